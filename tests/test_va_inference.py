"""Audio-visual prediction: EMENet-VA in the Predictor, on raw video (`emenet predict --audio`) and
on the challenge test set (Train_Multimodal/test_ensemble.py), with audio windows aligned to frames."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
import torch

import emenet
from emenet.audio import video_audio_windows
from emenet.decoding import task_probs
from emenet.errors import EMENetInputError
from emenet.inference.predictor import Predictor

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _one_error_line(run: subprocess.CompletedProcess) -> str:
    assert run.returncode == 2, run.stderr[-2000:]
    lines = [line for line in run.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    return lines[0]


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("va_checkpoints")
    torch.manual_seed(0)
    emenet.save_checkpoint(root / "va" / "net_epoch_1_va.pth", emenet.create_model("emenet_va"), 1)
    torch.manual_seed(1)
    emenet.save_checkpoint(root / "va2" / "net_epoch_1_va2.pth", emenet.create_model("emenet_va"), 1)
    emenet.save_checkpoint(root / "v" / "net_epoch_1_v.pth", emenet.create_model("emenet_v"), 1)
    return root


def _inputs(n: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    crops = rng.integers(0, 256, (n, 112, 112, 3), dtype=np.uint8)
    audio = (rng.standard_normal((n, 10080)) * 0.1).astype(np.float32)
    return crops, audio


def test_predictor_runs_emenet_va_like_the_model(ckpts):
    crops, audio = _inputs()
    predictor = Predictor([ckpts / "va" / "net_epoch_1_va.pth"], batch_size=4)
    assert predictor.audio_window == 10080 and predictor.audio_sample_rate == 16000
    preds, state = predictor.predict_frames(crops, audio=audio)
    model = emenet.load_checkpoint(ckpts / "va" / "net_epoch_1_va.pth").eval()
    frames = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div(255)
    with torch.no_grad():
        logits, _ = model(frames[None], torch.from_numpy(audio)[None])  # one sequence of 6 frames
    for task, got in (("EXPR", preds.expr_probs), ("AU", preds.au_probs), ("VA", preds.va_probs)):
        want = task_probs(task, logits[task][0].double()).numpy()
        np.testing.assert_allclose(got, want, atol=2e-5, err_msg=task)
    # streaming in pieces continues the same sequence
    first, s = predictor.predict_frames(crops[:2], audio=audio[:2])
    rest, s = predictor.predict_frames(crops[2:], s, audio=audio[2:])
    np.testing.assert_allclose(np.concatenate([first.va, rest.va]), preds.va, atol=2e-5)
    # the audio matters: silence gives other predictions
    silent, _ = predictor.predict_frames(crops, audio=np.zeros_like(audio))
    assert np.abs(silent.expr_probs - preds.expr_probs).max() > 1e-4


def test_predictor_audio_errors_are_one_line(ckpts):
    crops, audio = _inputs(3)
    va = Predictor([ckpts / "va" / "net_epoch_1_va.pth"])
    with pytest.raises(EMENetInputError, match=r"EMENet-VA members: pass audio=\(N, 10080\) windows at 16000 Hz"):
        va.predict_frames(crops)
    with pytest.raises(EMENetInputError, match=r"expected audio windows of shape \(3, 10080\)"):
        va.predict_frames(crops, audio=audio[:, :8000])
    with pytest.raises(EMENetInputError, match=r"expected audio windows of shape \(3, 10080\)"):
        va.predict_frames(crops, audio=audio[:2])
    v = Predictor([ckpts / "v" / "net_epoch_1_v.pth"])
    assert v.audio_window == 0 and v.audio_sample_rate is None  # a visual predictor hears nothing


def test_ensemble_of_va_members_splits_uncertainty(ckpts):
    crops, audio = _inputs(4)
    both = Predictor([ckpts / "va" / "net_epoch_1_va.pth", ckpts / "va2" / "net_epoch_1_va2.pth"])
    preds, _ = both.predict_frames(crops, audio=audio)
    u = preds.uncertainty["EXPR"]
    np.testing.assert_allclose(u.total, u.aleatoric + u.epistemic, atol=1e-5)
    assert (u.epistemic > 0).all()


@pytest.mark.slow
def test_predict_with_audio_on_the_real_video(shared_dir, ckpts, tmp_path, monkeypatch):
    """`emenet predict --audio`: one row per frame, and frame k heard the window centred on frame k."""
    from emenet.cli import main
    video = shared_dir / "data" / "utterance_1.mp4"
    heard: list[np.ndarray] = []
    original = Predictor.predict_frames

    def spy(self, crops, state=None, audio=None):
        heard.append(audio)
        return original(self, crops, state, audio=audio)

    monkeypatch.setattr(Predictor, "predict_frames", spy)
    torch.set_num_threads(1)
    code = main(["predict", str(video), "--checkpoint", str(ckpts / "va" / "net_epoch_1_va.pth"), "--audio",
                 "--main_face", "--output_dir", str(tmp_path / "out"), "--no_progress"])
    assert code == 0
    table = pd.read_csv(tmp_path / "out" / "utterance_1_predictions.csv")
    assert len(table) == 309 and list(table["frame"]) == list(range(309))
    found = table["face_found"].to_numpy(bool)
    want = video_audio_windows(video)[found]
    np.testing.assert_array_equal(np.concatenate(heard), want)
    assert np.abs(want).max() > 0.01  # the real track has sound in it


def _video_without_audio(path: Path, frames: int = 8) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 20, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_predict_audio_flag_errors_are_one_line(shared_dir, ckpts, tmp_path):
    video = shared_dir / "data" / "utterance_1.mp4"
    emenet_bin = [sys.executable, "-m", "emenet.cli"]
    va = str(ckpts / "va" / "net_epoch_1_va.pth")
    cases = {
        "VA without --audio": ([str(video), "--checkpoint", va], "add --audio"),
        "--audio with a visual model": ([str(video), "--checkpoint", str(ckpts / "v" / "net_epoch_1_v.pth"),
                                         "--audio"], "--audio needs EMENet-VA checkpoints"),
        "no audio track": ([str(_video_without_audio(tmp_path / "silent.avi")), "--checkpoint", va, "--audio"],
                           "silent.avi"),
    }
    for case, (args, expected) in cases.items():
        run = subprocess.run([*emenet_bin, "predict", *args, "--output_dir", str(tmp_path / "o"), "--no_progress"],
                             capture_output=True, text=True, env=ENV, timeout=300)
        line = _one_error_line(run)
        assert expected in line, (case, line)
    assert "audio" in line  # the silent video's error says what is missing


@pytest.mark.slow
def test_multimodal_test_ensemble_writes_every_frame(ckpts, tmp_path):
    from emenet.data.synth import generate_synthetic_dataset
    from emenet.challenge.submission import read_submission_file
    from emenet.challenge.test_set import read_test_set
    root = tmp_path / "synth"
    generate_synthetic_dataset(root, num_videos=2, seed=3, min_frames=30, max_frames=40, two_person_videos=0,
                               num_test_videos=1, overwrite=True, progress=False, num_workers=1)
    index = tmp_path / "test_set.parquet"
    run = subprocess.run([sys.executable, str(REPO / "Training" / "create_test_set_file.py"), "--data_dir",
                          str(root / "cropped_aligned"), "--video_dir", str(root / "videos"), "--out", str(index),
                          "--no_progress"], capture_output=True, text=True, env=ENV, timeout=300)
    assert run.returncode == 0, run.stderr
    script = REPO / "Train_Multimodal" / "test_ensemble.py"
    base = [sys.executable, str(script), "--names", "va", "va2", "--load_epochs", "1", "--checkpoints_dir",
            str(ckpts), "--test_set_file", str(index), "--no_progress", "--batch_size", "16", "--chunk_size", "16"]
    run = subprocess.run([*base, "--save_dir", str(tmp_path / "sub")], capture_output=True, text=True, env=ENV,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    test_set = read_test_set(index)
    for name in test_set:
        video = test_set[name]
        for task in video.tasks:
            for folder in ("va", "va2", "merged"):
                rows = read_submission_file(tmp_path / "sub" / folder / task / f"{name}.txt", task)
                assert len(rows) == video.num_frames, (folder, task, name)
    # a visual checkpoint, or a window the checkpoints were not trained with, is refused in one line
    visual = [sys.executable, str(script), "--names", "v", "--load_epochs", "1", "--checkpoints_dir", str(ckpts),
              "--test_set_file", str(index), "--save_dir", str(tmp_path / "sub2")]
    assert "a visual (EMENet-V) model" in _one_error_line(
        subprocess.run(visual, capture_output=True, text=True, env=ENV, timeout=300))
    wrong = [*base, "--save_dir", str(tmp_path / "sub3"), "--window_size", "0.5"]
    assert "asks for 8000" in _one_error_line(subprocess.run(wrong, capture_output=True, text=True, env=ENV,
                                                             timeout=300))
