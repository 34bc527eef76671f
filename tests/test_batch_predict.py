"""Many videos: inputs, per-video folders, summary.csv, resuming, failures, local processes and Ray."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

import emenet
from emenet.cli import main as emenet_main
from emenet.data.images import read_rgb
from emenet.errors import EMENetInputError
from emenet.video import PredictorSpec, PredictSettings, find_videos, predict_videos
from emenet.video.batch import BatchProgress, is_batch_input
from emenet.video.predict import VideoWriter
from emenet.video.job import DONE_NAME, SUMMARY_COLUMNS
from emenet.video.workers import ray_plan, threads_per_worker

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "example_image" / "astronaut_photo.jpg"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
GOOD = {"a": 12, "sub/b": 10}  # output name -> frames


def _face_video(path: Path, n: int) -> Path:
    """A small H.264 video of a slowly moving face (192x192, 25 fps)."""
    face = cv2.resize(read_rgb(PHOTO), (192, 192), interpolation=cv2.INTER_AREA)
    path.parent.mkdir(parents=True, exist_ok=True)
    with VideoWriter(path, Fraction(25), 192, 192) as writer:
        for i in range(n):
            writer.write(np.roll(face, i, axis=1))
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three videos, one of them broken, and files that are not videos."""
    root = tmp_path_factory.mktemp("videos")
    for name, n in GOOD.items():
        _face_video(root / f"{name}.mp4", n)
    (root / "broken.mp4").write_bytes(b"\x00not a video" * 20)
    (root / "notes.txt").write_text("not a video\n")
    (root / ".hidden").mkdir()
    _face_video(root / ".hidden" / "skip.mp4", 3)
    return root


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = emenet.create_model("emenet_v")
    with torch.no_grad():  # spread the outputs so that decisions differ between frames
        for head in model.tmodels:
            head.decoder.weight.mul_(20.0)
    return emenet.save_checkpoint(tmp_path_factory.mktemp("ckpt") / "m.pth", model, 1)



@pytest.fixture(scope="module")
def sequential(folder, ckpt, tmp_path_factory, one_thread):
    """The reference: every video in this process, one after another."""
    out = tmp_path_factory.mktemp("sequential")
    report = predict_videos([folder], out, PredictorSpec((str(ckpt),)), progress=False)
    return out, report


def _summary(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "summary.csv").set_index("output_dir")


def _status(out: Path) -> dict[str, str]:
    table = _summary(out)
    return {Path(d).relative_to(out).as_posix(): s for d, s in table["status"].items()}


def _assert_same_predictions(out_a: Path, out_b: Path) -> None:
    for name in GOOD:
        stem = Path(name).name
        a = pd.read_csv(out_a / name / f"{stem}_predictions.csv")
        b = pd.read_csv(out_b / name / f"{stem}_predictions.csv")
        assert list(a.columns) == list(b.columns) and len(a) == len(b) == GOOD[name]
        probs = [c for c in a.columns if c.endswith(("_prob", "_uncertainty")) or c in ("valence", "arousal")]
        decoded = [c for c in a.columns if c not in probs and c not in ("time",) and not c.startswith("box_")]
        assert "expression_name" in decoded and "AU12" in decoded and "track" in decoded
        pd.testing.assert_frame_equal(a[decoded], b[decoded])
        np.testing.assert_allclose(a[probs].to_numpy(), b[probs].to_numpy(), atol=1e-5)


# ------------------------------------------------------------------------------ inputs

def test_inputs_are_files_folders_and_globs(folder, tmp_path):
    jobs = find_videos([folder], tmp_path / "out")
    assert [j.name for j in jobs] == ["a", "broken", "sub/b"]  # recursive, no .txt, no hidden folder
    assert [j.output_dir for j in jobs] == [tmp_path / "out" / n for n in ("a", "broken", "sub/b")]
    assert [j.name for j in find_videos([str(folder / "**" / "*.mp4")], tmp_path)] == ["a", "broken", "sub/b"]
    assert [j.name for j in find_videos([str(folder / "s*" / "*.mp4")], tmp_path)] == ["sub/b"]
    # files by name (their stem), and the same file twice counts once
    files = find_videos([folder / "a.mp4", folder / "sub" / "b.mp4", folder / "a.mp4"], tmp_path)
    assert [(j.name, j.video) for j in files] == [("a", folder / "a.mp4"), ("b", folder / "sub" / "b.mp4")]
    # outputs written inside the input folder are never taken as inputs
    inside = find_videos([folder], folder / "sub")
    assert [j.name for j in inside] == ["a", "broken"]
    assert is_batch_input(folder) and is_batch_input("x/*.mp4") and not is_batch_input(folder / "a.mp4")


def test_bad_inputs_are_one_line_errors(folder, tmp_path):
    with pytest.raises(EMENetInputError, match="missing: no such file or folder"):
        find_videos([folder / "missing"], tmp_path)
    with pytest.raises(EMENetInputError, match="matches no video file"):
        find_videos([str(folder / "*.mkv")], tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EMENetInputError, match="empty: no video files in this folder"):
        find_videos([tmp_path / "empty"], tmp_path / "out")
    shutil.copy(folder / "a.mp4", tmp_path / "a.mp4")
    with pytest.raises(EMENetInputError, match="would both write to"):
        find_videos([folder / "a.mp4", tmp_path / "a.mp4"], tmp_path / "out")


def test_worker_resources_are_shared_out():
    assert threads_per_worker(2, cores=16) == 8 and threads_per_worker(4, cores=2) == 1
    # (actors, CPUs each, GPUs each): one actor per GPU; without GPUs one per CPU; never more than videos
    assert ray_plan({"CPU": 32.0, "GPU": 4.0}, None, 100) == (4, 8, 1)
    assert ray_plan({"CPU": 8.0}, None, 100) == (8, 1, 0)
    assert ray_plan({"CPU": 8.0}, 2, 100) == (2, 4, 0)
    assert ray_plan({"CPU": 8.0, "GPU": 2.0}, None, 1) == (1, 8, 1)


def test_progress_counts_both_passes_of_the_running_videos():
    bars = BatchProgress(total=3, finished=1, enabled=True)
    bars.on_event(("a", "start", 10))
    bars.on_event(("a", "detecting", 10))
    bars.on_event(("a", "predicting", 4))
    assert (bars.frames.n, bars.frames.total) == (14, 20) and bars.frames.desc.startswith("a: predicting")
    bars.on_event(("b", "start", None))  # a container without a frame count
    assert bars.frames.total is None and bars.frames.desc.startswith("frames of 2 videos")
    bars.finished("a")
    bars.finished("b")
    assert bars.videos.n == 3 and bars.frames.n == 0
    bars.close()


# ----------------------------------------------------------------- runs and reruns

def test_sequential_run_writes_a_folder_per_video_and_a_summary(sequential, folder):
    out, report = sequential
    assert _status(out) == {"a": "done", "broken": "failed", "sub/b": "done"}
    table = _summary(out)
    assert list(pd.read_csv(out / "summary.csv").columns) == list(SUMMARY_COLUMNS)
    broken = table.loc[str(out / "broken")]
    assert "broken.mp4: cannot be decoded as a video" in broken["error"] and "\n" not in broken["error"]
    assert not (out / "broken").exists()  # nothing written for it
    for name, n in GOOD.items():
        row = table.loc[str(out / name)]
        assert (row["frames"], row["tracks"], row["face_frames"]) == (n, 1, n) and row["seconds"] > 0
        stem = Path(name).name
        assert sorted(p.name for p in (out / name).iterdir()) == sorted(
            [f"{stem}_annotated.mp4", f"{stem}_predictions.csv", f"{stem}_timeline.png", DONE_NAME])
    assert [o.status for o in report.outcomes] == ["done", "failed", "done"] and len(report.failed) == 1


@pytest.mark.slow
def test_two_workers_match_the_sequential_run(sequential, folder, ckpt, tmp_path):
    out_seq, _ = sequential
    report = predict_videos([folder], tmp_path, PredictorSpec((str(ckpt),)), workers=2, progress=False)
    assert _status(tmp_path) == _status(out_seq)
    _assert_same_predictions(out_seq, tmp_path)
    # the workers were other processes, each used for more than one video: the model was loaded per worker
    pids = {o.worker for o in report.outcomes}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2 < len(report.outcomes)


def test_rerun_skips_finished_videos_and_other_settings_are_not_mistaken_for_them(sequential, folder, ckpt, tmp_path,
                                                                                 one_thread, capsys):
    out = tmp_path / "out"
    shutil.copytree(sequential[0], out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "summary.csv"}
    spec = PredictorSpec((str(ckpt),))
    report = predict_videos([folder], out, spec, progress=False)
    assert _status(out) == {"a": "skipped", "broken": "failed", "sub/b": "skipped"}
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # nothing redone
    assert _summary(out).loc[str(out / "a"), "frames"] == GOOD["a"]  # counts kept from the first run
    # the command with a file and a glob: both finished, so nothing to do and exit status 0
    code = emenet_main(["predict", str(folder / "a.mp4"), str(folder / "s*" / "*.mp4"), "--checkpoint", str(ckpt),
                        "--output_dir", str(out), "--no_progress"])
    assert code == 0 and "0 done, 2 skipped, 0 failed" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    # outputs made with another threshold are neither skipped nor replaced without --overwrite
    predict_videos([folder], out, spec, PredictSettings(min_track_length=3), progress=False)
    table = _summary(out)
    assert _status(out)["a"] == "failed" and "other settings (min_track_length)" in table.loc[str(out / "a"), "error"]
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    report = predict_videos([folder / "a.mp4"], out, spec, PredictSettings(min_track_length=3), overwrite=True,
                            progress=False)
    assert [o.status for o in report.outcomes] == ["done"]
    assert (out / "a" / "a_predictions.csv").stat().st_mtime_ns != mtimes[out / "a" / "a_predictions.csv"]


def test_unfinished_folders_are_redone(sequential, folder, ckpt, tmp_path, one_thread):
    out = tmp_path / "out"
    shutil.copytree(sequential[0], out)
    # an interrupted run: a half-written temporary file, one output replaced, no marker
    (out / "sub" / "b" / DONE_NAME).unlink()
    (out / "sub" / "b" / ".b_annotated.mp4.k2j4.tmp").write_bytes(b"\x00" * 10)
    (out / "sub" / "b" / "b_predictions.csv").write_text("frame\n0\n")
    # and a marker whose file no longer matches: not complete either
    (out / "a" / "a_timeline.png").write_bytes(b"x")
    predict_videos([folder], out, PredictorSpec((str(ckpt),)), progress=False)
    assert _status(out) == {"a": "done", "broken": "failed", "sub/b": "done"}
    assert len(pd.read_csv(out / "sub" / "b" / "b_predictions.csv")) == GOOD["sub/b"]
    assert cv2.imread(str(out / "a" / "a_timeline.png")) is not None
    assert not list(out.rglob("*.tmp"))
    _assert_same_predictions(sequential[0], out)


@pytest.mark.slow
def test_killed_run_resumes_without_redoing_finished_videos(folder, ckpt, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "emenet.cli", "predict", str(folder), "--checkpoint", str(ckpt),
               "--output_dir", str(out)]
    with open(tmp_path / "first.log", "w") as log:
        run = subprocess.Popen(command + ["--no_progress"], stdout=log, stderr=log, env=ENV)
        try:
            deadline = time.monotonic() + 300
            while not (out / "a" / DONE_NAME).exists():
                assert run.poll() is None, (tmp_path / "first.log").read_text()
                assert time.monotonic() < deadline
                time.sleep(0.02)
            run.send_signal(signal.SIGKILL)  # no chance to clean up
        finally:
            run.wait()
    assert not (out / "sub" / "b" / DONE_NAME).exists()  # killed while work was left
    assert _status(out)["sub/b"] == "pending"  # the summary, rewritten after each video, says what is left
    finished = {p: p.stat().st_mtime_ns for p in (out / "a").iterdir()}

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600, env=ENV)
    assert rerun.returncode == 2, rerun.stderr  # the broken video failed
    errors = [line for line in rerun.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: 1 of 3 video(s) failed; see {out / 'summary.csv'}"] and "Traceback" not in rerun.stderr
    assert "1 done, 1 skipped, 1 failed" in rerun.stdout
    assert _status(out) == {"a": "skipped", "broken": "failed", "sub/b": "done"}
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # the finished video was not redone
    assert not list(out.rglob("*.tmp"))
    assert len(pd.read_csv(out / "sub" / "b" / "b_predictions.csv")) == GOOD["sub/b"]
    # two progress bars: videos, and the frames of the video in progress
    assert "videos: 100%" in rerun.stderr and "sub/b: predicting" in rerun.stderr


@pytest.mark.slow
def test_ray_local_matches_the_sequential_run(sequential, folder, ckpt, tmp_path):
    out_seq, _ = sequential
    report = predict_videos([folder], tmp_path, PredictorSpec((str(ckpt),)), workers=2, ray_address="auto",
                            progress=False)
    assert _status(tmp_path) == _status(out_seq)
    _assert_same_predictions(out_seq, tmp_path)
    assert os.getpid() not in {o.worker for o in report.outcomes if o.status == "done"}


def test_a_summary_left_half_written_by_a_killed_run_is_cleaned_up(tmp_path):
    from emenet.io_utils import remove_stale_temporaries
    summary = tmp_path / "summary.csv"
    stale = [tmp_path / ".summary.csv.abc123.tmp", tmp_path / ".summary.csv.x.tmp"]
    keep = [tmp_path / ".other.csv.abc.tmp", tmp_path / "summary.csv.tmp", tmp_path / "summary.csv"]
    for p in stale + keep:
        p.write_text("x")
    remove_stale_temporaries(summary)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
