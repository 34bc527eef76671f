"""The synthetic Aff-wild2 dataset: layout and formats as in the reference README (section 1),
determinism, and labels that are visible in the pixels and audible in the audio."""
from __future__ import annotations

import json
import re
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from emenet.data.synth import (AU_GIVEN_EXPR, EXTRA_GIVEN_EXPR, RANDOM_AU_ON, VA_GIVEN_EXPR, SynthSummary,
                                generate_synthetic_dataset)
from emenet.data.synth_face import FaceRenderer, FaceState, Identity
from emenet.errors import EMENetInputError
from emenet.tasks import AU_NAMES, EXPR_NAMES

HEADERS = {"AU_Set": ",".join(AU_NAMES), "EXPR_Set": ",".join(EXPR_NAMES), "VA_Set": "valence,arousal"}
TASK_DIRS = {"AU": "AU_Set", "EXPR": "EXPR_Set", "VA": "VA_Set"}
SMALL = dict(num_videos=8, min_frames=100, max_frames=150, two_person_videos=1, num_test_videos=1, progress=False)
TINY = dict(num_videos=2, min_frames=30, max_frames=40, two_person_videos=1, num_test_videos=1, progress=False)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary, dict]:
    root = tmp_path_factory.mktemp("synth")
    summary = generate_synthetic_dataset(root, seed=3, **SMALL)
    manifest = json.loads((root / "synth_manifest.json").read_text())
    return root, summary, manifest


def read_rows(path: Path) -> tuple[str, list[str]]:
    lines = path.read_text().splitlines()
    return lines[0], lines[1:]


def annotation_files(root: Path) -> list[Path]:
    return sorted((root / "annotations").glob("*_Set/*_Set/*.txt"))


def video_info(path: Path) -> tuple[int, float, int, int]:
    """(decoded frame count, fps, audio sample rate, audio channels) read with PyAV."""
    with av.open(str(path)) as c:
        fps = float(c.streams.video[0].average_rate)
        audio = c.streams.audio[0]
        rate, channels = audio.rate, audio.channels
        frames = sum(1 for _ in c.decode(video=0))
    return frames, fps, rate, channels


def labels(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)


# --- layout and formats ----------------------------------------------------------------------

def test_layout_and_headers(synth):
    root, summary, manifest = synth
    for entry in ("videos", "cropped_aligned", "annotations", "abaw2_test_set", "synth_manifest.json"):
        assert (root / entry).exists(), entry
    assert {p.parent.name for p in (root / "videos").glob("*/*")} <= {"batch1", "batch2"}
    files = annotation_files(root)
    assert files
    for f in files:
        task_dir, split = f.parent.parent.name, f.parent.name
        assert task_dir in HEADERS and split in ("Train_Set", "Validation_Set"), f
        header, rows = read_rows(f)
        assert header == HEADERS[task_dir]
        width = {"AU_Set": 12, "EXPR_Set": 1, "VA_Set": 2}[task_dir]
        assert all(len(r.split(",")) == width for r in rows), f
    for task, splits in summary.splits.items():   # the summary agrees with the files
        for split, names in splits.items():
            on_disk = sorted(p.stem for p in (root / "annotations" / TASK_DIRS[task] / split).glob("*.txt"))
            assert sorted(names) == on_disk


def test_label_values(synth):
    root, _, _ = synth
    for f in annotation_files(root):
        y = labels(f)
        task_dir = f.parent.parent.name
        if task_dir == "AU_Set":
            ok = np.all(y == -1, axis=1) | np.all(np.isin(y, (0, 1)), axis=1)
        elif task_dir == "EXPR_Set":
            ok = np.isin(y[:, 0], np.arange(-1, 7))
        else:
            ok = np.all(y == -5, axis=1) | np.all(np.abs(y) <= 1, axis=1)
        assert ok.all(), f


def test_rows_match_decoded_video_frames(synth):
    root, _, manifest = synth
    for name, facts in manifest["names"].items():
        frames, fps, _, _ = video_info(root / facts["video"])
        assert frames == facts["num_frames"] and fps == pytest.approx(facts["fps"])
        files = [*root.glob(f"annotations/*/*/{name}.txt"), *root.glob(f"synthetic_ground_truth/*_Set/{name}.txt")]
        assert files, name
        for f in files:
            assert len(read_rows(f)[1]) == frames, f
    assert {facts["fps"] for facts in manifest["videos"].values()} <= {25, 30}


def test_crops_are_112_rgb_with_some_missing(synth):
    root, summary, manifest = synth
    total_missing = 0
    for name, facts in manifest["names"].items():
        crops = sorted((root / "cropped_aligned" / name).glob("*.jpg"))
        missing = set(facts["missing_crops"])
        expected = {f"{i:05d}.jpg" for i in range(1, facts["num_frames"] + 1) if i not in missing}
        assert {c.name for c in crops} == expected, name
        total_missing += len(missing)
        for c in crops[:: max(1, len(crops) // 4)]:
            with Image.open(c) as im:
                assert im.size == (112, 112) and im.mode == "RGB"
    assert 0.01 < total_missing / summary.num_frames < 0.08
    assert summary.num_crops == summary.num_frames - total_missing


def test_unannotated_rows_present(synth):
    root, _, _ = synth
    blank = {"AU_Set": ",".join(["-1"] * 12), "EXPR_Set": "-1", "VA_Set": "-5,-5"}
    for task_dir, row in blank.items():
        counts = [read_rows(f)[1].count(row) for f in root.glob(f"annotations/{task_dir}/*/*.txt")]
        assert sum(counts) > 0, task_dir
        assert all(c < 0.5 * len(read_rows(f)[1]) for c, f in zip(counts, root.glob(f"annotations/{task_dir}/*/*.txt")))


def test_partial_task_coverage_and_consistent_splits(synth):
    root, summary, manifest = synth
    names = [n for n, f in manifest["names"].items() if f["split"] != "Test_Set"]
    tasks_of = {n: {d.parent.parent.name for d in root.glob(f"annotations/*/*/{n}.txt")} for n in names}
    assert all(tasks_of[n] for n in names)
    assert any(len(t) < 3 for t in tasks_of.values())
    for n in names:
        assert len({d.parent.name for d in root.glob(f"annotations/*/*/{n}.txt")}) == 1, n
    for task in ("AU", "EXPR", "VA"):
        assert summary.splits[task]["Train_Set"] and summary.splits[task]["Validation_Set"], task


def test_two_person_video(synth):
    root, _, manifest = synth
    two = [v for v in manifest["videos"].values() if len(v["names"]) == 2]
    assert len(two) == 1
    video = two[0]
    stem = Path(video["path"]).stem
    assert video["names"] == [f"{stem}_left", f"{stem}_right"]
    assert (root / video["path"]).is_file() and not (root / "cropped_aligned" / stem).exists()
    boxes = {}
    for name in video["names"]:
        assert manifest["names"][name]["video"] == video["path"]
        assert (root / "cropped_aligned" / name).is_dir()
        b = np.loadtxt(root / "synthetic_ground_truth" / "face_boxes" / f"{name}.csv", delimiter=",", skiprows=1)
        assert len(b) == video["num_frames"]
        boxes[name] = (b[:, 1] + b[:, 3]) / 2
    left, right = boxes.values()
    assert np.all(left < video["width"] / 2) and np.all(right > video["width"] / 2)
    a, b = (np.asarray(Image.open(sorted((root / "cropped_aligned" / n).glob("*.jpg"))[0]), np.float32)
            for n in video["names"])
    assert np.abs(a - b).mean() > 5   # two different people


def test_test_set_lists(synth):
    root, summary, manifest = synth
    listed = set()
    for task, fname in (("AU", "AU"), ("EXPR", "Expr"), ("VA", "VA")):
        path = root / "abaw2_test_set" / f"test_set_{fname}_Challenge.txt"
        names = path.read_text().split()
        assert names == summary.test_names[task] and names, task
        for n in names:
            assert any((root / "cropped_aligned" / n).glob("*.jpg"))
            assert (root / manifest["names"][n]["video"]).is_file()
            assert not list(root.glob(f"annotations/*/*/{n}.txt"))
            gt = root / "synthetic_ground_truth" / TASK_DIRS[task] / f"{n}.txt"
            assert read_rows(gt)[0] == HEADERS[TASK_DIRS[task]]
        listed |= set(names)
    assert all(manifest["names"][n]["split"] == "Test_Set" for n in listed)


# --- determinism and overwriting -------------------------------------------------------------

def _snapshot(root: Path) -> dict[str, bytes]:
    files = [p for p in root.rglob("*") if p.is_file() and p.suffix in (".txt", ".csv", ".jpg")]
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_deterministic(tmp_path):
    a = generate_synthetic_dataset(tmp_path / "a", seed=5, **TINY)
    b = generate_synthetic_dataset(tmp_path / "b", seed=5, num_workers=1, **TINY)
    generate_synthetic_dataset(tmp_path / "c", seed=6, num_workers=1, **TINY)
    snap_a, snap_b = _snapshot(tmp_path / "a"), _snapshot(tmp_path / "b")
    assert snap_a == snap_b
    assert a.splits == b.splits
    ma = json.loads((tmp_path / "a" / "synth_manifest.json").read_text())
    mb = json.loads((tmp_path / "b" / "synth_manifest.json").read_text())
    assert ma == mb
    assert _snapshot(tmp_path / "c") != snap_a


def test_refuses_non_empty_out_dir(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(EMENetInputError, match=re.escape(str(out))):
        generate_synthetic_dataset(out, **TINY)
    generate_synthetic_dataset(out, overwrite=True, **TINY)
    assert (out / "keep.txt").read_text() == "mine"   # overwrite replaces only what it writes
    assert (out / "synth_manifest.json").is_file()


# --- audio ---------------------------------------------------------------------------------

def decode_audio(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        chunks = [f.to_ndarray().reshape(-1) for f in c.decode(stream)]
        return np.concatenate(chunks).astype(np.float32), stream.rate


def test_audio_loudness_follows_arousal(synth):
    root, _, manifest = synth
    rms_all, arousal_all = [], []
    for name in manifest["splits"]["VA"]["Train_Set"] + manifest["splits"]["VA"]["Validation_Set"]:
        facts = manifest["names"][name]
        if facts["side"] != "single":
            continue
        frames, fps, rate, channels = video_info(root / facts["video"])
        assert channels == 1 and rate in (16000, 44100, 48000)
        samples, _ = decode_audio(root / facts["video"])
        assert abs(len(samples) / rate - frames / fps) < 0.2
        hop = rate / fps
        rms = np.array([np.sqrt(np.mean(samples[int(i * hop):int((i + 1) * hop)] ** 2) + 1e-12) for i in range(frames)])
        win = int(fps)   # one-second loudness: pauses between syllables average out
        rms = np.convolve(rms, np.ones(win) / win, mode="same")
        y = labels(root / "annotations" / "VA_Set" / facts["split"] / f"{name}.txt")
        keep = y[:, 1] > -4
        rms_all.append(rms[keep])
        arousal_all.append(y[keep, 1])
    assert rms_all
    r = np.corrcoef(np.concatenate(rms_all), np.concatenate(arousal_all))[0, 1]
    assert r > 0.3, r


def test_voice_activity_has_pauses(synth):
    root, _, manifest = synth
    for name, facts in manifest["names"].items():
        vad = np.loadtxt(root / "synthetic_ground_truth" / "voice_activity" / f"{name}.txt", skiprows=1)
        assert len(vad) == facts["num_frames"]
        if facts["side"] == "single":
            assert 0.1 < vad.mean() < 0.95, name
        else:   # two people take turns
            assert vad.any(), name


# --- the labels are visible ------------------------------------------------------------------

def load_crops(root: Path, manifest: dict, task: str, size: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Grey crops (every other frame, resized to size x size) with their labels, for every name
    annotated for `task` (test names through their synthetic ground truth)."""
    names, xs, ys = [], [], []
    for name, facts in manifest["names"].items():
        if task not in facts["tasks"]:
            continue
        folder = "synthetic_ground_truth/" + TASK_DIRS[task] if facts["split"] == "Test_Set" else \
            f"annotations/{TASK_DIRS[task]}/{facts['split']}"
        y = labels(root / folder / f"{name}.txt")
        for i in range(0, len(y), 2):
            crop = root / "cropped_aligned" / name / f"{i + 1:05d}.jpg"
            if y[i, 0] < -0.5 or not crop.exists():
                continue
            grey = cv2.imread(str(crop), cv2.IMREAD_GRAYSCALE)
            if size != grey.shape[0]:
                grey = cv2.resize(grey, (size, size), interpolation=cv2.INTER_AREA)
            xs.append(grey.astype(np.float32))
            ys.append(y[i])
            names.append(name)
    return names, np.stack(xs), np.stack(ys)

HOG = cv2.HOGDescriptor((48, 48), (16, 16), (8, 8), (8, 8), 9)


def hog_features(images: np.ndarray) -> np.ndarray:
    """HOG of 48x48 grey images, z-scored: cheap features that tolerate small misalignments."""
    x = np.stack([HOG.compute(np.ascontiguousarray(im, dtype=np.uint8)).ravel() for im in images])
    return (x - x.mean(0)) / (x.std(0) + 1e-3)


def leave_one_group_out_centroids(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> float:
    """Balanced accuracy of a nearest-class-centroid classifier, each group (person) held out in turn."""
    pred = np.full_like(y, -1)
    for g in np.unique(groups):
        held = groups == g
        classes = np.unique(y[~held])
        centroids = np.stack([x[~held & (y == k)].mean(0) for k in classes])
        pred[held] = classes[((x[held, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)]
    return float(np.mean([(pred[y == k] == k).mean() for k in np.unique(y)]))


def test_au12_visible_in_mouth_region(synth):
    """AU12 is decodable from the mouth region of unseen people's crops, not from the forehead."""
    root, _, manifest = synth
    names, x, y = load_crops(root, manifest, "AU", 112)
    names, au12 = np.array(names), y[:, AU_NAMES.index("AU12")].astype(int)
    assert 20 < au12.sum() < len(au12) - 20

    def region(rows: slice) -> np.ndarray:
        return hog_features(np.stack([cv2.resize(im[rows, 16:96], (48, 48)) for im in x]))

    mouth = leave_one_group_out_centroids(region(slice(64, 104)), au12, names)
    forehead = leave_one_group_out_centroids(region(slice(4, 44)), au12, names)
    assert mouth > 0.65 and mouth > forehead + 0.1, (mouth, forehead)


def test_expression_decodable_from_crops(synth):
    """Nearest class centroid on HOG of the crops, one person held out at a time, beats chance.
    (The fixture has few people and expression segments; the renderer test below is the
    stronger check.)"""
    root, _, manifest = synth
    names, x, y = load_crops(root, manifest, "EXPR", 48)
    expr = y[:, 0].astype(int)
    balanced = leave_one_group_out_centroids(hog_features(x), expr, np.array(names))
    classes = len(np.unique(expr))
    assert classes >= 4 and balanced > 1.5 / classes, (balanced, classes)


def expression_state(rng: np.random.Generator, expr: int) -> FaceState:
    """A face state as the generator makes one inside an expression segment."""
    st = FaceState.neutral()
    on = (rng.random(12) < AU_GIVEN_EXPR[expr]) | (rng.random(12) < RANDOM_AU_ON)
    st.au[:] = np.where(on, rng.uniform(0.65, 1.0, 12), 0.0)
    st.extra[:] = EXTRA_GIVEN_EXPR[expr] * rng.uniform(0.6, 1.0)
    st.valence, st.arousal = np.clip(VA_GIVEN_EXPR[expr] + rng.normal(0, 0.12, 2), -1, 1)
    return st


def test_renderer_expressions_decodable_on_unseen_identities():
    rng = np.random.default_rng(0)
    images, expr, person = [], [], []
    for p in range(20):
        renderer = FaceRenderer(Identity.sample(rng), scale=1.0)
        for e in range(len(EXPR_NAMES)):
            images.append(cv2.cvtColor(renderer.render_crop(expression_state(rng, e), 48), cv2.COLOR_RGB2GRAY))
            expr.append(e)
            person.append(p)
    balanced = leave_one_group_out_centroids(hog_features(np.stack(images)), np.array(expr), np.array(person))
    assert balanced > 0.6, balanced   # chance: 1/7


def test_renderer_each_au_has_its_own_visible_effect():
    rng = np.random.default_rng(1)
    renderers = [FaceRenderer(Identity.sample(rng), scale=1.0) for _ in range(6)]
    effects = []
    for j, au in enumerate(AU_NAMES):
        diffs = []
        for renderer in renderers:
            st = FaceState.neutral()
            st.au[:] = (rng.random(12) < 0.1) * 0.8
            st.au[j] = 0.0
            off = renderer.render_crop(st).astype(np.float32).mean(2)
            st.au[j] = 0.8
            diffs.append(renderer.render_crop(st).astype(np.float32).mean(2) - off)
        effect = np.mean(diffs, 0)
        assert cv2.blur(np.abs(effect), (15, 15)).max() > 6.0, au   # a clearly visible local change
        effects.append(effect.ravel())
    corr = np.corrcoef(effects)
    np.fill_diagonal(corr, 0)
    assert corr.max() < 0.9, np.unravel_index(corr.argmax(), corr.shape)   # and no two AUs look alike

def test_faces_found_by_haar_cascade(synth):
    """Later face-tracking code runs OpenCV's default frontal-face cascade on the raw videos."""
    root, _, manifest = synth
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    found = tried = 0
    for name, facts in manifest["names"].items():
        boxes = np.loadtxt(root / "synthetic_ground_truth" / "face_boxes" / f"{name}.csv", delimiter=",", skiprows=1)
        with av.open(str(root / facts["video"])) as c:
            for i, frame in enumerate(c.decode(video=0)):
                if i % 20:
                    continue
                grey = cv2.cvtColor(frame.to_ndarray(format="rgb24"), cv2.COLOR_RGB2GRAY)
                cx, cy = (boxes[i, 1] + boxes[i, 3]) / 2, (boxes[i, 2] + boxes[i, 4]) / 2
                dets = cascade.detectMultiScale(grey, 1.1, 5, minSize=(60, 60))
                found += any(x < cx < x + w and y < cy < y + h for x, y, w, h in dets)
                tried += 1
    assert found / tried > 0.7, (found, tried)
