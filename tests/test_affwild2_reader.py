"""Reading Aff-wild2 from its official layout: annotation parsing, masks, splits, fps, errors, cache."""
from __future__ import annotations

import logging
import os
import pickle
import re
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from emenet.data import (AffWild2Index, VideoInfo, find_video, load_affwild2_index, read_annotation_file,
                         video_info)
from emenet.data import affwild2
from emenet.errors import EMENetInputError
from emenet.tasks import AU_NAMES, TASKS

# ----------------------------------------------------------------------------- layout helpers

TASK_DIRS = {"AU": "AU_Set", "EXPR": "EXPR_Set", "VA": "VA_Set"}


def write_annotation(root: Path, task: str, split: str, name: str, rows: list[str], header: str | None = None) -> Path:
    path = root / "annotations" / TASK_DIRS[task] / split / f"{name}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([TASKS[task].header if header is None else header, *rows]) + "\n")
    return path


def write_crops(root: Path, name: str, frames: list[int], size: int = 8) -> Path:
    directory = root / "cropped_aligned" / name
    directory.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        Image.new("RGB", (size, size), (frame * 20 % 256, 0, 0)).save(directory / f"{frame:05d}.jpg")
    return directory


def write_video(path: Path, fps: int = 25, num_frames: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 20, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def au_row(*values: int) -> str:
    return ",".join(str(v) for v in values)


AU_LEFT = [au_row(*([1, 0] * 6)), au_row(*([0, 1] * 6)), au_row(*([-1] * 12)), au_row(*([1] * 12)),
           au_row(*([0] * 12)), au_row(*([1] * 12))]
EXPR_LEFT = ["0", "3", "-1", "6", "2", "1"]
VA_SOLO = ["0.5,-0.25", "-5,-5", "1,-1", "0,0"]


@pytest.fixture()
def layout(tmp_path: Path) -> Path:
    """vid1_left / vid1_right share videos/batch1/vid1.mp4 (25 fps); `solo` has no video (assumed fps).

    vid1_left: AU train (row 3 unannotated), EXPR val, crops 1,2,3,5 (4 missing, row 6 has no crop).
    vid1_right: AU val, crops 1..3.  solo: VA train (row 2 is -5), EXPR train, crops 1..4.
    `orphan` has crops but no annotation file.
    """
    root = tmp_path / "affwild2"
    write_annotation(root, "AU", "Train_Set", "vid1_left", AU_LEFT)
    write_annotation(root, "EXPR", "Validation_Set", "vid1_left", EXPR_LEFT)
    write_annotation(root, "AU", "Validation_Set", "vid1_right", AU_LEFT[:4])
    write_annotation(root, "VA", "Train_Set", "solo", VA_SOLO)
    write_annotation(root, "EXPR", "Train_Set", "solo", ["4", "4", "5", "-1"])
    write_crops(root, "vid1_left", [1, 2, 3, 5])
    write_crops(root, "vid1_right", [1, 2, 3])
    write_crops(root, "solo", [1, 2, 3, 4])
    write_crops(root, "orphan", [1, 2])
    write_video(root / "videos" / "batch1" / "vid1.mp4")
    return root


@pytest.fixture()
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


# ----------------------------------------------------------------------------- parsing

def test_read_annotation_file_each_task(layout: Path) -> None:
    au = read_annotation_file(layout / "annotations/AU_Set/Train_Set/vid1_left.txt", "AU")
    assert au.shape == (6, 12) and au.dtype == np.float32
    np.testing.assert_array_equal(au[0], [1, 0] * 6)
    np.testing.assert_array_equal(au[2], [-1] * 12)
    expr = read_annotation_file(layout / "annotations/EXPR_Set/Validation_Set/vid1_left.txt", "EXPR")
    assert expr.shape == (6, 1)
    np.testing.assert_array_equal(expr[:, 0], [0, 3, -1, 6, 2, 1])
    va = read_annotation_file(layout / "annotations/VA_Set/Train_Set/solo.txt", "VA")
    np.testing.assert_allclose(va, [[0.5, -0.25], [-5, -5], [1, -1], [0, 0]])


def test_read_annotation_file_tolerates_crlf_bom_and_trailing_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(b"\xef\xbb\xbfvalence,arousal\r\n0.1,0.2\r\n-5,-5\r\n\r\n\n")
    np.testing.assert_allclose(read_annotation_file(path, "VA"), [[0.1, 0.2], [-5, -5]], rtol=1e-6)
    header_only = tmp_path / "h.txt"
    header_only.write_text("Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise\n")
    assert read_annotation_file(header_only, "EXPR").shape == (0, 1)


MALFORMED = [
    # (task, rows, header, expected line, message fragment)
    ("AU", AU_LEFT, "AU1,AU2,AU4", 1, "expected header 'AU1,AU2"),
    ("EXPR", ["0"], "valence,arousal", 1, "expected header 'Neutral"),
    ("AU", [AU_LEFT[0], AU_LEFT[1], au_row(*([0] * 11))], None, 4, "expected 12 comma-separated values, got 11"),
    ("AU", [AU_LEFT[0], au_row(*([0] * 13))], None, 3, "expected 12 comma-separated values, got 13"),
    ("VA", ["0.1,0.2", "0.3"], None, 3, "expected 2 comma-separated values, got 1"),
    ("EXPR", ["1", "2,3"], None, 3, "expected 1 value, got 2"),
    ("EXPR", ["1", "", "2"], None, 3, "expected 1 value, got an empty line"),
    ("AU", [AU_LEFT[0], au_row(0, 0, 2, *([0] * 9))], None, 3, "AU4 value 2: expected 0, 1 or -1"),
    ("AU", [au_row(*([0] * 11), -5)], None, 2, "AU26 value -5"),
    ("EXPR", ["0", "1", "7"], None, 4, "expr value 7: expected an integer in -1..6"),
    ("EXPR", ["2.5"], None, 2, "expr value 2.5: expected an integer"),
    ("EXPR", ["-2"], None, 2, "expr value -2"),
    ("VA", ["0.1,0.2", "1.5,0"], None, 3, r"valence value 1\.5: expected a value in \[-1, 1\] or the -5 marker"),
    ("VA", ["0.1,-2"], None, 2, "arousal value -2"),
    ("VA", ["0.1,0.2", "0.3,abc"], None, 3, "non-numeric value 'abc'"),
    ("VA", ["0.1,nan"], None, 2, "non-numeric value 'nan'"),
    ("AU", [AU_LEFT[0], AU_LEFT[1], ",".join(["1"] * 11 + [""])], None, 4, "non-numeric value ''"),
]


@pytest.mark.parametrize("task, rows, header, line, fragment", MALFORMED)
def test_malformed_annotation_names_file_and_line(tmp_path: Path, task: str, rows: list[str], header: str | None,
                                                  line: int, fragment: str) -> None:
    path = write_annotation(tmp_path, task, "Train_Set", "bad", rows, header)
    with pytest.raises(EMENetInputError, match=re.escape(f"{path}:{line}: ") + fragment) as info:
        read_annotation_file(path, task)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("task, rows, header, line, fragment", MALFORMED[:3] + MALFORMED[7:8] + MALFORMED[14:15])
def test_malformed_annotation_stops_indexing(layout: Path, cache_dir: Path, task: str, rows: list[str],
                                             header: str | None, line: int, fragment: str) -> None:
    path = write_annotation(layout, task, "Validation_Set", "vid1_right", rows, header)
    with pytest.raises(EMENetInputError, match=re.escape(f"{path}:{line}: ") + fragment):
        load_affwild2_index(layout, cache_dir=cache_dir)


def test_fewer_rows_than_crops_is_an_error(layout: Path, cache_dir: Path) -> None:
    path = write_annotation(layout, "VA", "Train_Set", "solo", VA_SOLO[:3])  # crops go up to frame 4
    with pytest.raises(EMENetInputError, match=re.escape(f"{path}:5: fewer label rows than crops: 3 rows") +
                       ".*00004.jpg is frame 4") as info:
        load_affwild2_index(layout, cache_dir=cache_dir)
    assert "\n" not in str(info.value)


def test_same_name_in_train_and_validation_is_an_error(layout: Path, cache_dir: Path) -> None:
    write_annotation(layout, "AU", "Validation_Set", "vid1_left", AU_LEFT)
    with pytest.raises(EMENetInputError, match="'vid1_left' is annotated in both Train_Set and Validation_Set of AU"):
        load_affwild2_index(layout, cache_dir=cache_dir)


def test_bad_roots_and_arguments(tmp_path: Path, layout: Path, cache_dir: Path) -> None:
    with pytest.raises(EMENetInputError, match="root directory not found"):
        load_affwild2_index(tmp_path / "missing", cache_dir=cache_dir)
    (tmp_path / "empty" / "annotations").mkdir(parents=True)
    with pytest.raises(EMENetInputError, match="no annotation files found"):
        load_affwild2_index(tmp_path / "empty", cache_dir=cache_dir)
    index = load_affwild2_index(layout, cache_dir=cache_dir)
    with pytest.raises(EMENetInputError, match="'nobody' is not in the Aff-wild2 index"):
        index.task_labels("nobody", "AU")
    with pytest.raises(EMENetInputError, match="unknown split 'test'"):
        index.names("AU", "test")
    with pytest.raises(EMENetInputError, match="unknown annotated task 'FA'"):
        index.names("FA", "train")


# ----------------------------------------------------------------------------- index content

def test_index_tables(layout: Path, cache_dir: Path) -> None:
    index = load_affwild2_index(layout, cache_dir=cache_dir)
    assert isinstance(index, AffWild2Index) and index.data_root == layout.resolve()
    assert list(index.videos["name"]) == ["solo", "vid1_left", "vid1_right"]  # `orphan` has no annotation
    frames = index.frames
    assert list(frames.columns) == ["name", "frame", *AU_NAMES, "expr", "valence", "arousal"]
    assert frames["frame"].dtype == np.int32 and frames["AU1"].dtype == np.int8 and frames["expr"].dtype == np.int8
    assert frames["valence"].dtype == np.float32
    assert list(zip(frames["name"].astype(str), frames["frame"])) == [
        ("solo", 1), ("solo", 2), ("solo", 3), ("solo", 4),
        ("vid1_left", 1), ("vid1_left", 2), ("vid1_left", 3), ("vid1_left", 5),
        ("vid1_right", 1), ("vid1_right", 2), ("vid1_right", 3)]
    solo = frames[frames["name"] == "solo"]
    assert (solo[list(AU_NAMES)] == -1).all().all()  # not annotated for AU
    assert frames.loc[frames["name"] == "vid1_right", "valence"].isna().all()
    assert list(index.videos.set_index("name")["num_crops"]) == [4, 4, 3]
    assert index.crop_path("vid1_left", 5) == layout.resolve() / "cropped_aligned" / "vid1_left" / "00005.jpg"
    assert index.crop_path("vid1_left", 5).is_file()


def test_task_labels_and_masks(layout: Path, cache_dir: Path) -> None:
    index = load_affwild2_index(layout, cache_dir=cache_dir)
    frames, labels, mask = index.task_labels("vid1_left", "AU")
    np.testing.assert_array_equal(frames, [1, 2, 3, 5])  # crop 4 missing: skipped; row 6 has no crop: dropped
    assert labels.shape == mask.shape == (4, 12) and labels.dtype == np.float32 and mask.dtype == bool
    np.testing.assert_array_equal(labels[0], [1, 0] * 6)
    np.testing.assert_array_equal(labels[1], [0, 1] * 6)
    assert not mask[2].any() and (labels[2] == 0).all()  # frame 3: unannotated row stays, masked
    assert mask[[0, 1, 3]].all()
    np.testing.assert_array_equal(labels[3], [0] * 12)  # frame 5 -> row 5

    frames, labels, mask = index.task_labels("vid1_left", "EXPR")
    assert labels.shape == (4, 1)
    np.testing.assert_array_equal(labels[:, 0], [0, 3, 0, 2])
    np.testing.assert_array_equal(mask[:, 0], [True, True, False, True])

    frames, labels, mask = index.task_labels("solo", "VA")
    np.testing.assert_array_equal(frames, [1, 2, 3, 4])
    np.testing.assert_allclose(labels, [[0.5, -0.25], [0, 0], [1, -1], [0, 0]])
    np.testing.assert_array_equal(mask, [[True, True], [False, False], [True, True], [True, True]])

    frames, labels, mask = index.task_labels("vid1_right", "VA")  # not annotated for VA at all
    assert labels.shape == (3, 2) and not mask.any() and (labels == 0).all()


def test_per_task_splits(layout: Path, cache_dir: Path) -> None:
    index = load_affwild2_index(layout, cache_dir=cache_dir)
    assert index.names("AU", "train") == index.names("AU", "Train_Set") == ["vid1_left"]
    assert index.names("AU", "val") == ["vid1_right"]
    assert index.names("EXPR", "Train_Set") == ["solo"]
    assert index.names("EXPR", "Validation_Set") == ["vid1_left"]
    assert index.names("VA", "train") == ["solo"] and index.names("VA", "val") == []
    splits = index.videos.set_index("name")[["split_AU", "split_EXPR", "split_VA"]]
    assert splits.loc["vid1_right"].tolist() == ["Validation_Set", "", ""]
    assert splits.loc["solo"].tolist() == ["", "Train_Set", "Train_Set"]


def test_left_right_names_share_one_video_and_fps(layout: Path, cache_dir: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="emenet.data.affwild2"):
        index = load_affwild2_index(layout, cache_dir=cache_dir)
    videos = index.videos.set_index("name")
    video_file = str((layout / "videos" / "batch1" / "vid1.mp4").resolve())
    for name in ("vid1_left", "vid1_right"):
        assert videos.loc[name, "video"] == "vid1"
        assert videos.loc[name, "video_path"] == video_file
        assert videos.loc[name, "fps"] == pytest.approx(25.0)
        assert videos.loc[name, "fps_source"] == "video"
        assert videos.loc[name, "num_video_frames"] == 10
    assert videos.loc["solo", "fps"] == 30.0 and videos.loc["solo", "fps_source"] == "assumed"
    assert videos.loc["solo", "video_path"] == "" and videos.loc["solo", "num_video_frames"] == -1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "for 1 of 3 names; assuming 30 fps" in warnings[0].getMessage()
    infos = [r for r in caplog.records if r.levelno == logging.INFO and "Aff-wild2 index of" in r.getMessage()]
    assert len(infos) == 1 and "3 names (2 videos), 11 cropped frames" in infos[0].getMessage()


def test_video_info_reads_an_encoded_video(tmp_path: Path) -> None:
    path = write_video(tmp_path / "clip.avi", fps=25, num_frames=12)
    info = video_info(path)
    assert isinstance(info, VideoInfo)
    assert info.fps == pytest.approx(25.0) and info.num_frames == 12
    assert info.duration == pytest.approx(12 / 25, abs=0.05) and info.has_audio is False
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(EMENetInputError, match=re.escape(f"{bad}: cannot be decoded as a video")):
        video_info(bad)


def test_find_video_exact_stem_first_then_without_side(tmp_path: Path) -> None:
    write_video(tmp_path / "videos" / "batch1" / "a.mp4")
    write_video(tmp_path / "videos" / "batch2" / "b.avi")
    write_video(tmp_path / "videos" / "batch2" / "b_left.mp4")
    assert find_video(tmp_path, "a") == tmp_path / "videos" / "batch1" / "a.mp4"
    assert find_video(tmp_path, "a_right") == tmp_path / "videos" / "batch1" / "a.mp4"
    assert find_video(tmp_path, "b_left") == tmp_path / "videos" / "batch2" / "b_left.mp4"
    assert find_video(tmp_path, "b_right") == tmp_path / "videos" / "batch2" / "b.avi"
    assert find_video(tmp_path, "c_left") is None


# ----------------------------------------------------------------------------- cache

def _cache_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file())


def _forbid_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("annotation files were parsed again")
    monkeypatch.setattr(affwild2, "read_annotation_file_with_classes", fail)


def test_cache_is_parquet_and_reused(layout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pickle(*args, **kwargs):
        raise AssertionError("pickle used")
    for fn in ("dump", "dumps", "load", "loads"):
        monkeypatch.setattr(pickle, fn, no_pickle)
    first = load_affwild2_index(layout)  # default location: <data_root>/.emenet_cache/
    files = _cache_files(layout / ".emenet_cache")
    assert [p.name for p in files] == ["affwild2_index.frames.parquet", "affwild2_index.videos.parquet"]
    for path in files:
        assert path.read_bytes()[:4] == b"PAR1"
        pq.read_table(path)
    _forbid_parsing(monkeypatch)
    mtimes = [p.stat().st_mtime_ns for p in files]
    second = load_affwild2_index(layout)
    assert [p.stat().st_mtime_ns for p in files] == mtimes
    assert second.frames.equals(first.frames) and second.videos.equals(first.videos)
    frames, labels, mask = second.task_labels("vid1_left", "AU")
    np.testing.assert_array_equal(frames, [1, 2, 3, 5])
    assert not mask[2].any()


def test_cache_rebuilt_when_an_annotation_changes(layout: Path, cache_dir: Path) -> None:
    load_affwild2_index(layout, cache_dir=cache_dir)
    path = write_annotation(layout, "EXPR", "Train_Set", "solo", ["1", "1", "1", "1"])  # same size
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000_000))
    _, labels, _ = load_affwild2_index(layout, cache_dir=cache_dir).task_labels("solo", "EXPR")
    np.testing.assert_array_equal(labels[:, 0], [1, 1, 1, 1])
    write_annotation(layout, "EXPR", "Train_Set", "solo", ["1", "2", "3", "4", "5"])  # new size
    _, labels, _ = load_affwild2_index(layout, cache_dir=cache_dir).task_labels("solo", "EXPR")
    np.testing.assert_array_equal(labels[:, 0], [1, 2, 3, 4])


def test_cache_rebuilt_when_a_crop_or_video_is_added(layout: Path, cache_dir: Path) -> None:
    load_affwild2_index(layout, cache_dir=cache_dir)
    write_crops(layout, "vid1_left", [4])
    frames, labels, mask = load_affwild2_index(layout, cache_dir=cache_dir).task_labels("vid1_left", "AU")
    np.testing.assert_array_equal(frames, [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(labels[3], [1] * 12)
    write_video(layout / "videos" / "batch2" / "solo.mp4", fps=24)
    videos = load_affwild2_index(layout, cache_dir=cache_dir).videos.set_index("name")
    assert videos.loc["solo", "fps"] == pytest.approx(24.0) and videos.loc["solo", "fps_source"] == "video"


def test_rebuild_forces_parsing(layout: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_affwild2_index(layout, cache_dir=cache_dir)
    calls = []
    real = affwild2.read_annotation_file_with_classes
    monkeypatch.setattr(affwild2, "read_annotation_file_with_classes", lambda *a: calls.append(a) or real(*a))
    load_affwild2_index(layout, cache_dir=cache_dir)
    assert calls == []
    load_affwild2_index(layout, cache_dir=cache_dir, rebuild=True)
    assert len(calls) == 5


def test_corrupt_cache_is_rebuilt(layout: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    load_affwild2_index(layout, cache_dir=cache_dir)
    frames_file = next(p for p in _cache_files(cache_dir) if p.name.endswith(".frames.parquet"))
    frames_file.write_bytes(b"PAR1 garbage")
    with caplog.at_level(logging.WARNING):
        index = load_affwild2_index(layout, cache_dir=cache_dir)
    assert len(index.frames) == 11
    assert any("ignoring unreadable index cache" in r.getMessage() for r in caplog.records)
    pq.read_table(frames_file)  # rewritten


def test_cache_dir_argument_overrides_default(layout: Path, cache_dir: Path) -> None:
    load_affwild2_index(layout, cache_dir=cache_dir)
    assert not (layout / ".emenet_cache").exists()
    assert len(_cache_files(cache_dir)) == 2


def test_read_only_data_root_falls_back_to_user_cache(layout: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    real = affwild2._writable_dir
    root = layout.resolve()
    # chmod alone does not stop root (as in CI containers), so the writability probe also sees it
    monkeypatch.setattr(affwild2, "_writable_dir", lambda d: not Path(d).is_relative_to(root) and real(d))
    os.chmod(layout, 0o555)
    try:
        load_affwild2_index(layout)
        assert not (layout / ".emenet_cache").exists()
        files = _cache_files(tmp_path / "xdg" / "emenet")
        assert len(files) == 2 and all(p.suffix == ".parquet" for p in files)
        _forbid_parsing(monkeypatch)
        assert len(load_affwild2_index(layout).frames) == 11
    finally:
        os.chmod(layout, 0o755)


@pytest.mark.parametrize("file_names, frames, jpg_count", [
    (["00003.jpg", "00001.jpg", "00002.png", "abcde.jpg", "00000.jpg"], [1, 3], 4),  # all 9 characters
    (["00003.jpg", "7.jpg", ".DS_Store", "x.jpg", "123456.jpg"], [3, 7, 123456], 4),  # mixed lengths
    ([], [], 0),
])
def test_crop_frame_numbers(file_names: list[str], frames: list[int], jpg_count: int) -> None:
    got, count = affwild2._frame_numbers(file_names)
    assert got.dtype == np.int32 and got.tolist() == frames and count == jpg_count


def test_stray_files_in_crop_dirs_are_ignored(layout: Path, cache_dir: Path) -> None:
    (layout / "cropped_aligned" / "solo" / "Thumbs.db").write_bytes(b"")
    (layout / "cropped_aligned" / "solo" / "notes.txt").write_text("x")
    frames, _, _ = load_affwild2_index(layout, cache_dir=cache_dir).task_labels("solo", "VA")
    np.testing.assert_array_equal(frames, [1, 2, 3, 4])


def test_annotated_name_without_crops(layout: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_annotation(layout, "EXPR", "Train_Set", "nocrops", ["1", "2"])
    with caplog.at_level(logging.INFO, logger="emenet.data.affwild2"):
        index = load_affwild2_index(layout, cache_dir=cache_dir)
    assert index.videos.set_index("name").loc["nocrops", "num_crops"] == 0
    frames, labels, mask = index.task_labels("nocrops", "EXPR")
    assert frames.shape == (0,) and labels.shape == mask.shape == (0, 1)
    assert any("1 names without crops" in r.getMessage() for r in caplog.records)
    rebuilt = AffWild2Index(index.data_root, index.videos, index.frames.astype({"name": str}))
    assert rebuilt.task_labels("nocrops", "EXPR")[0].shape == (0,)
    np.testing.assert_array_equal(rebuilt.task_labels("vid1_left", "AU")[0], [1, 2, 3, 5])
