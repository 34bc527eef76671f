"""Fault tests: training and prediction killed (SIGKILL, no chance to clean up) at several points,
then rerun with the same command: the outputs are complete and identical to an uninterrupted
run's, and no temporary file is left anywhere.

A kill is placed deterministically by a small driver that runs `emenet` in a subprocess and
sends itself SIGKILL at the n-th optimizer step, the n-th batch of video frames, or after the
n-th output file is written to its temporary name but before it is renamed (the moment a
half-finished run leaves the most behind).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from failure_helpers import World, leftovers

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
DRIVER = r"""
import os, signal, sys
kind, n = os.environ["EMENET_TEST_KILL_AT"].split(":")
calls = []

def tick(*_):
    calls.append(1)
    if len(calls) == int(n):
        os.kill(os.getpid(), signal.SIGKILL)

if kind == "write":      # the n-th output is complete under its temporary name, not yet renamed
    import emenet.io_utils as io_utils
    real_fsync = io_utils._fsync
    def fsync(path, directory=False):
        if not directory:
            tick()
        return real_fsync(path, directory)
    io_utils._fsync = fsync
elif kind == "step":     # in the middle of an epoch, before the n-th optimizer step
    from torch.optim.optimizer import register_optimizer_step_pre_hook
    register_optimizer_step_pre_hook(tick)
elif kind == "frames":   # in the middle of a video, at its n-th batch of frames
    from emenet.inference.predictor import Predictor
    real_predict = Predictor.predict_frames
    def predict_frames(self, *args, **kwargs):
        tick()
        return real_predict(self, *args, **kwargs)
    Predictor.predict_frames = predict_frames
from emenet.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def world(failure_world) -> World:
    return failure_world


def killed_at(point: str, argv: list[str], log: Path) -> None:
    """Run `emenet argv` and assert it died by SIGKILL at `point` ("write:3", "step:2", ...)."""
    with open(log, "w") as out:
        run = subprocess.run([sys.executable, "-c", DRIVER, *argv], stdout=out, stderr=subprocess.STDOUT,
                             env={**ENV, "EMENET_TEST_KILL_AT": point}, timeout=600)
    assert run.returncode == -signal.SIGKILL, log.read_text()


def _emenet(argv: list[str]) -> int:
    from emenet.cli import main
    return main(argv)


def _train_argv(world: World, checkpoints: Path) -> list[str]:
    return ["train", "--data_root", str(world.data), "--checkpoints_dir", str(checkpoints), "--loggings_dir",
            str(checkpoints / "logs"), "--name", "run", "--seq_len", "4", "--batch_size", "1",
            "--max_steps_per_epoch", "1", "--nepochs", "2", "--max_val_videos", "1", "--val_seq_len", "16",
            "--seed", "3", "--load_epoch", "-1", "--cache_dir", str(checkpoints.parent / "cache")]


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


RUN_PATHS = ("checkpoints_dir", "loggings_dir", "cache_dir")  # differ between the two runs by design


def _assert_same_tensors(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            if not (where.endswith("train_config") and k in RUN_PATHS):
                _assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.slow
def test_training_killed_at_several_points_resumes_to_identical_files(world, tmp_path, one_thread):
    reference, broken = tmp_path / "reference", tmp_path / "broken"
    assert _emenet(_train_argv(world, reference)) == 0
    # one step per epoch: step 2 is inside epoch 2; the files of an epoch are written as
    # val_epoch, history, opt_epoch, net_epoch (the net last: it marks the epoch complete)
    killed_at("step:2", _train_argv(world, broken), tmp_path / "a.log")
    killed_at("write:4", _train_argv(world, broken), tmp_path / "b.log")   # config, val 2, history, opt 2 (tmp)
    assert leftovers(broken / "run")  # the kill left the optimizer state under its temporary name
    killed_at("write:5", _train_argv(world, broken), tmp_path / "c.log")   # ... opt 2 renamed, net 2 (tmp)
    assert _emenet(_train_argv(world, broken)) == 0

    assert not leftovers(broken)
    names = sorted(p.name for p in (reference / "run").iterdir() if p.is_file())
    assert sorted(p.name for p in (broken / "run").iterdir() if p.is_file()) == names
    for name in names:
        a, b = reference / "run" / name, broken / "run" / name
        if name.endswith(".json"):
            assert json.loads(a.read_text()) == json.loads(b.read_text()), name
        elif name.endswith(".pth"):
            _assert_same_tensors(_state(a), _state(b), name)


@pytest.mark.slow
def test_prediction_killed_at_several_points_reruns_to_identical_files(world, tmp_path):
    def argv(out: Path) -> list[str]:
        return ["predict", str(world.video), "--checkpoint", str(world.checkpoint), "--output_dir", str(out),
                "--no_progress", "--backend", "eager", "--batch_size", "8"]

    reference, broken = tmp_path / "reference", tmp_path / "broken"
    assert _emenet(argv(reference)) == 0
    killed_at("frames:2", argv(broken), tmp_path / "a.log")   # in the middle of the video
    assert leftovers(broken)  # the annotated video was being written
    killed_at("write:2", argv(broken), tmp_path / "b.log")    # the timeline renamed, the others complete
                                                              # under their temporary names
    assert [p.name for p in broken.iterdir() if not p.name.startswith(".")] == ["clip_timeline.png"]
    assert _emenet(argv(broken)) == 0  # the same command: an incomplete set is replaced

    assert not leftovers(broken)
    names = sorted(p.name for p in reference.iterdir())
    assert sorted(p.name for p in broken.iterdir()) == names and len(names) == 3
    for name in ("clip_predictions.csv", "clip_timeline.png"):
        assert (reference / name).read_bytes() == (broken / name).read_bytes(), name
    # the video encoder's bytes may vary with its threads; the frames must not
    a, b = _frames(reference / "clip_annotated.mp4"), _frames(broken / "clip_annotated.mp4")
    assert a.shape == b.shape and a.shape[0] == 32 and np.abs(a.astype(int) - b).mean() < 1.0


def _frames(path: Path) -> np.ndarray:
    import av
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
