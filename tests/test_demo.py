"""The live demo: headless on the real video (as a subprocess), the face follower, one-line errors."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import emenet
from emenet.errors import EMENetInputError
from emenet.face.detector import Detections
from emenet.video.demo import (FaceFollower, FrameSource, demo_step, draw_demo_frame, open_recorder, open_source,
                                   run_demo)
from emenet.viz.drawing import PANEL_WIDTH, panel_height
from emenet.inference.predictor import Predictor

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "Demo" / "Demo_Visual_Model.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}



@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    for seed, name in enumerate(("a", "b")):
        torch.manual_seed(seed)
        emenet.save_checkpoint(root / name / f"net_epoch_2_{name}.pth", emenet.create_model("emenet_v"), 2)
    return root


def _demo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DEMO), *args], capture_output=True, text=True, timeout=600, env=ENV)


def _one_error_line(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 2, run.stderr
    lines = [line for line in run.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    return lines[0]


def _read_video(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def test_headless_demo_records_the_real_video(shared_dir, checkpoints, tmp_path):
    video = shared_dir / "data" / "utterance_1.mp4"
    out = tmp_path / "rec" / "output.avi"
    run = _demo("--source", str(video), "--names", "a", "b", "--load_epochs", "2", "--checkpoints_dir",
                str(checkpoints), "--headless", "--save_file", str(out), "--max_frames", "60", "--threads", "1")
    assert run.returncode == 0, run.stderr
    match = re.search(r"60 frames \(face in (\d+)\) in [\d.]+ s: ([\d.]+) frames/s", run.stdout)
    assert match, run.stdout
    assert int(match.group(1)) >= 50  # the Haar cascade finds his face in (nearly) every frame
    frames = _read_video(out)
    assert len(frames) == 60
    assert frames[0].shape == (max(360, panel_height(("EXPR", "AU", "VA"))), 640 + PANEL_WIDTH, 3)
    assert frames[-1][:, 640:].std() > 10  # the panel is drawn


def test_demo_errors_exit_non_zero_with_one_line(shared_dir, checkpoints, tmp_path):
    run = _demo("--source", str(tmp_path / "missing.mp4"), "--checkpoint", str(checkpoints / "a" / "net_epoch_2_a.pth"),
                "--headless", "--save_file", str(tmp_path / "o.avi"))
    assert "cannot be opened" in _one_error_line(run)
    run = _demo("--source", str(shared_dir / "data" / "utterance_1.mp4"), "--names", "a", "--load_epochs", "7",
                "--checkpoints_dir", str(checkpoints), "--headless", "--save_file", str(tmp_path / "o.avi"))
    assert "checkpoint not found" in _one_error_line(run)
    assert not (tmp_path / "o.avi").exists()


def test_library_errors(checkpoints, tmp_path, one_thread):
    predictor = Predictor([checkpoints / "a" / "net_epoch_2_a.pth"])
    (tmp_path / "garbage.mp4").write_text("not a video")
    with pytest.raises(EMENetInputError, match="cannot be opened"):
        open_source(tmp_path / "garbage.mp4")
    empty = FrameSource(cv2.VideoCapture(), "empty source", False, 30.0, 64, 64, None)  # reads nothing
    with pytest.raises(EMENetInputError, match="no frames could be read"):
        run_demo(predictor, empty, save_file=tmp_path / "o.avi", show=False)
    with pytest.raises(EMENetInputError, match="only records"):
        run_demo(predictor, "0", show=False)
    with pytest.raises(EMENetInputError, match="unsupported recording format"):
        open_recorder(tmp_path / "o.gif", 30, 64, 64)


def _detections(*faces: tuple[float, float, float, float]) -> Detections:
    """(x, y, size, score) squares."""
    if not faces:
        return Detections.empty()
    boxes = np.array([[x, y, x + s, y + s] for x, y, s, _ in faces], np.float32)
    return Detections(boxes, np.array([f[3] for f in faces], np.float32))


def test_follower_keeps_the_sure_face_and_restarts_after_a_loss():
    follower = FaceFollower(smoothing=1.0)
    face, shirt = (100, 50, 80, 60.0), (90, 200, 150, 8.0)  # the printed face: larger, few neighbours
    step = follower.update(0, _detections(face, shirt))
    assert step.new_sequence and step.box is not None and step.box[1] == 50  # the sure face, not the larger
    followed = step.track_id
    for i in range(1, 6):  # the shirt flickers, the face stays
        step = follower.update(i, _detections(face, shirt) if i % 2 else _detections(face))
        assert step.track_id == followed and not step.new_sequence
    step = follower.update(6, _detections(shirt))  # the face missed once: kept, no box here
    assert step.track_id == followed and step.box is None and not step.new_sequence
    for i in range(7, 7 + follower.lost_after):  # nothing at all for a while
        follower.update(i, _detections())
    step = follower.update(7 + follower.lost_after, _detections((300, 60, 80, 50.0)))  # lost long: a new sequence
    assert step.new_sequence and step.track_id != followed and follower.sequences == 2


def test_demo_step_carries_the_state_and_resets_on_a_new_face(checkpoints, one_thread):
    predictor = Predictor([checkpoints / "a" / "net_epoch_2_a.pth"])
    stream, follower = predictor.stream(), FaceFollower()
    frame = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)
    plan = [_detections((100, 60, 90, 50.0))] * 3 + [_detections()] + [_detections()] * (follower.lost_after + 1) \
        + [_detections((40, 40, 90, 50.0))]
    last, seen, steps = None, [], []
    for i, dets in enumerate(plan):
        step = demo_step(i, frame, lambda _, d=dets: d, follower, stream, last)
        last = step.predictions
        seen.append(stream.state.frames_seen)
        steps.append(step)
        image = draw_demo_frame(frame, step, fps=12.5, height=panel_height(predictor.tasks))
        assert image.shape == (panel_height(predictor.tasks), 320 + PANEL_WIDTH, 3)
    assert seen[:4] == [1, 2, 3, 3]  # one sequence; a frame without the face feeds nothing
    assert steps[3].stale and steps[3].predictions is steps[2].predictions and steps[3].box is None
    assert steps[-2].predictions is None and seen[-2] == 0  # lost for long: nothing shown, state dropped
    assert steps[-1].new_sequence and not steps[-1].stale and seen[-1] == 1  # a new face: a new sequence


def test_docstring_example_names_what_exists():
    """The module's example is all `+SKIP` (it needs checkpoints and a video), so doctest ran none
    of it and could not fail; check instead that what it calls and reads is there."""
    import inspect

    import emenet.video.demo as demo
    assert {"source", "save_file", "show"} <= set(inspect.signature(demo.run_demo).parameters)
    assert list(inspect.signature(Predictor.from_names).parameters)[:3] == ["names", "load_epochs", "checkpoints_dir"]
    summary = demo.DemoSummary(frames=30, frames_with_face=20, sequences=1, seconds=2.0, save_file=None)
    assert summary.frames_per_second == 15.0


def test_demo_takes_cuda_and_the_originals_use_cuda():
    import importlib.util
    spec = importlib.util.spec_from_file_location("demo_script", DEMO)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    parser = script.build_parser()
    assert parser.parse_args(["--cuda"]).cuda and parser.parse_args(["--use_cuda"]).cuda
    assert not parser.parse_args([]).cuda
