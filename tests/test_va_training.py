"""EMENet-VA training: audio windows in the datasets, the VAD teacher and loss, bad inputs, and the
audio-visual distillation rounds end to end through Train_Multimodal/run_student_rounds.sh."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import io
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import emenet
from emenet import losses as L
from emenet.audio import frame_windows, window_centres
from emenet.data.affwild2 import load_affwild2_index
from emenet.data.audio_source import cut_windows
from emenet.data.audio_windows import attach_audio, default_audio_dir
from emenet.data.datasets import MultiTaskClipDataset, VideoChunkDataset
from emenet.data.labeled import labeled_videos
from emenet.errors import EMENetInputError
from emenet.models.vad_teacher import MarbleNetVAD, window_mean
from emenet.training.config import TrainConfig
from emenet.training.run import train_teacher
from media_helpers import write_click_video

REPO = Path(__file__).resolve().parents[1]
SR = 16_000
W = 10_080
HALF = W // 2


# --- a tiny Aff-wild2 layout with a known audio signal -------------------------------------------

def _make_layout(root: Path, name: str = "clip", fps: float = 25.0, num_frames: int = 40,
                 sample_rate: int | None = 44_100, clicks: tuple[int, ...] = (), audio_seconds: float | None = None,
                 missing: tuple[int, ...] = (), split: str = "Train_Set") -> Path:
    """videos/batch1/<name>.avi, its crops (1-based, `missing` 0-based frames left out) and VA labels."""
    (root / "videos" / "batch1").mkdir(parents=True, exist_ok=True)
    # PCM audio (no codec delay), quiet rather than digital zero but for the clicks
    write_click_video(root / "videos" / "batch1" / f"{name}.avi", fps, num_frames, sample_rate, clicks,
                      audio_seconds, floor=0.01)
    crops = root / "cropped_aligned" / name
    crops.mkdir(parents=True, exist_ok=True)
    for k in range(num_frames):
        if k not in missing:
            cv2.imwrite(str(crops / f"{k + 1:05d}.jpg"), np.full((112, 112, 3), 8 * (k % 30), np.uint8))
    ann = root / "annotations" / "VA_Set" / split
    ann.mkdir(parents=True, exist_ok=True)
    rows = [f"{np.sin(k / 5):.3f},{np.cos(k / 7):.3f}" for k in range(num_frames)]
    (ann / f"{name}.txt").write_text("valence,arousal\n" + "\n".join(rows) + "\n")
    return root


def _videos_with_audio(root: Path, cache: Path, **kw):
    index = load_affwild2_index(root, cache_dir=cache)
    videos = labeled_videos(index, "Train_Set", ("VA",))
    return attach_audio(videos, index, default_audio_dir(root, cache), progress=False, **kw)


# --- windows ---------------------------------------------------------------------------------------

def test_cut_windows_matches_frame_windows_and_reads_a_memory_map(tmp_path):
    rng = np.random.default_rng(0)
    track = rng.standard_normal(3 * SR).astype(np.float32)
    np.save(tmp_path / "t.npy", track)
    mapped = np.load(tmp_path / "t.npy", mmap_mode="r")
    frames = np.array([0, 1, 40, 73, 74])  # both edges: windows reach before the start and past the end
    starts = window_centres(frames, 25.0) - W // 2
    np.testing.assert_array_equal(cut_windows(mapped, starts, W), frame_windows(track, 25.0, frames))
    assert cut_windows(mapped, starts[:0], W).shape == (0, W)


def test_click_at_frame_k_lands_in_window_k_of_the_datasets(tmp_path):
    """44.1 kHz audio is resampled to 16 kHz; crop rows map to video frames by their frame number
    (frame 5 has no crop, so row 13 is frame 14)."""
    clicks = (2, 14, 27, 39)  # more than half a window apart: one click per window at most
    root = _make_layout(tmp_path / "data", fps=25.0, num_frames=40, sample_rate=44_100, clicks=clicks, missing=(5,))
    (video,) = _videos_with_audio(root, tmp_path / "cache")
    assert video.audio.track.is_file() and video.audio.fps == 25.0
    assert abs(len(np.load(video.audio.track)) - 40 / 25 * SR) <= 1  # 1.6 s resampled to 16 kHz

    clips = MultiTaskClipDataset([video], ("VA",), seq_len=39, fps=30, image_size=112, audio_window=W)
    item = clips[0]
    assert item["audio"].shape == (39, W) and item["audio"].dtype == torch.float32
    frames = video.frames[np.arange(39)] - 1  # 0-based video frame of each row
    for row, k in enumerate(frames):
        peak = int(np.argmax(np.abs(item["audio"][row].numpy())))
        if k in clicks:
            assert peak == HALF, (row, k)  # the click sits at the centre of its frame's window
        else:
            assert peak != HALF, (row, k)

    chunks = VideoChunkDataset([video], chunk=16, image_size=112, audio_window=W)
    audio = torch.cat([chunks[i]["audio"] for i in range(len(chunks))]).numpy()  # (39, W), in frame order
    np.testing.assert_array_equal(audio[:39], item["audio"].numpy())
    with pytest.raises(ValueError, match="no audio is attached"):
        VideoChunkDataset([labeled_videos(load_affwild2_index(root, cache_dir=tmp_path / "cache"), "Train_Set",
                                          ("VA",))[0]], 16, 112, audio_window=W)


def test_audio_shorter_than_the_video_is_zero_padded(tmp_path):
    root = _make_layout(tmp_path / "data", fps=25.0, num_frames=50, sample_rate=16_000, audio_seconds=1.0)
    (video,) = _videos_with_audio(root, tmp_path / "cache")
    assert len(np.load(video.audio.track)) == 2 * SR  # padded to the video's 2 s
    windows = VideoChunkDataset([video], chunk=64, image_size=112, audio_window=W)[0]["audio"].numpy()
    assert windows.shape == (50, W)
    assert np.all(windows[45:] == 0)  # frames 45.. hear only the padding (window starts after 1.0 s)
    assert np.abs(windows[10]).max() > 0.005  # the quiet signal where the track has one


def test_video_without_audio_track_is_a_one_line_error_unless_visual(tmp_path):
    root = _make_layout(tmp_path / "data", name="silent", sample_rate=None)
    _make_layout(root, name="silent_val", sample_rate=None, num_frames=20, split="Validation_Set")
    with pytest.raises(EMENetInputError, match=r"silent.avi: the video has no audio track; .*--modality visual"):
        _videos_with_audio(root, tmp_path / "cache")
    # the Train_Multimodal script (audio-visual by default) prints one line and exits 2
    done = subprocess.run([sys.executable, str(REPO / "Train_Multimodal" / "train_teacher.py"), "--data_root",
                           str(root), "--checkpoints_dir", str(tmp_path / "ck"), "--loggings_dir", str(tmp_path / "logs"),
                           "--cache_dir", str(tmp_path / "cache"), "--tasks", "VA", "--nepochs", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "silent.avi: the video has no audio track" in error[0]
    # the visual model does not need the audio
    result = train_teacher(TrainConfig(data_root=str(root), checkpoints_dir=str(tmp_path / "ck"), name="visual",
                                       loggings_dir=str(tmp_path / "logs"), cache_dir=str(tmp_path / "cache"),
                                       tasks=["VA"], seq_len=2, batch_size=1, max_steps_per_epoch=1, nepochs=1,
                                       val_seq_len=8, num_workers=0), progress=False)
    assert result.history[0]["train_loss_VA"] > 0


def test_a_name_without_its_video_file_is_refused(tmp_path):
    root = _make_layout(tmp_path / "data", name="clip")
    (root / "videos" / "batch1" / "clip.avi").unlink()
    with pytest.raises(EMENetInputError, match="no video file for 'clip'"):
        _videos_with_audio(root, tmp_path / "cache")


def test_audiovisual_options_are_checked():
    config = TrainConfig(modality="audiovisual", auxiliary=["VAD"], window_size=0.5)
    assert config.model_tasks == ("EXPR", "AU", "VA", "VAD") and config.audio_window == 8000
    assert config.model_config().audio_window == 8000
    assert TrainConfig(auxiliary=True).auxiliary == ["FA"]  # the original's boolean flag
    with pytest.raises(EMENetInputError, match="--auxiliary VAD needs the audio-visual model"):
        TrainConfig(auxiliary=["VAD"])
    with pytest.raises(EMENetInputError, match="16000 Hz"):
        TrainConfig(modality="audiovisual", sr=8000)
    with pytest.raises(EMENetInputError, match="--modality must be one of"):
        TrainConfig(modality="audio")
    with pytest.raises(EMENetInputError, match=r"unknown head\(s\) \['POSE'\]"):
        TrainConfig(auxiliary=["POSE"])


# --- the voice-activity teacher and loss -----------------------------------------------------------

def test_binary_kl_loss_against_a_hand_case_and_scipy():
    from scipy.stats import entropy
    # p = 0.8, q = softmax([0, log 3])[1] = 0.75: 0.8 ln(0.8/0.75) + 0.2 ln(0.2/0.25) = 0.0070022...
    logits = torch.tensor([[0.0, float(np.log(3.0))]], requires_grad=True)
    loss = L.vad_distill_loss(logits, torch.tensor([0.8]))
    assert loss.item() == pytest.approx(0.8 * np.log(0.8 / 0.75) + 0.2 * np.log(0.2 / 0.25), abs=1e-7)
    assert loss.item() == pytest.approx(0.0070022, abs=1e-6)
    rng = np.random.default_rng(1)
    z = rng.normal(size=(6, 2)).astype(np.float32)
    p = np.array([0.0, 1.0, 0.3, 0.5, 0.99, 0.01], np.float32)
    q = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    expected = np.mean([entropy([1 - pi, pi], qi) for pi, qi in zip(p, q)])  # KL(p || q) per frame
    assert L.vad_distill_loss(torch.from_numpy(z), torch.from_numpy(p)).item() == pytest.approx(expected, rel=1e-5)
    w = torch.tensor([1.0, 0, 0, 0, 0, 3.0])
    per = [entropy([1 - pi, pi], qi) for pi, qi in zip(p, q)]
    assert L.vad_distill_loss(torch.from_numpy(z), torch.from_numpy(p), weight=w).item() == pytest.approx(
        (per[0] + 3 * per[5]) / 4, rel=1e-5)
    # zero, with zero gradient, where the student matches the teacher
    match = torch.tensor([[0.0, float(np.log(4.0))]], requires_grad=True)
    out = L.vad_distill_loss(match, torch.tensor([0.8]))
    out.backward()
    assert out.item() == pytest.approx(0.0, abs=1e-7) and match.grad.abs().max() < 1e-6
    with pytest.raises(ValueError, match=r"expected shape \(N, 2\)"):
        L.vad_distill_loss(torch.zeros(3, 3), torch.zeros(3))


def test_vad_loss_pairs_each_clip_with_its_own_targets():
    from emenet.training.objectives import _voice_activity_loss
    logits = {"VAD": torch.randn(3, 2, 2)}  # clips 0-1 are EXPR's, clip 2 VA's
    batch = {"VA": {"vad": torch.tensor([[0.9, 0.1]])}, "EXPR": {"vad": torch.tensor([[0.2, 0.3], [0.5, 1.0]])}}
    slices = {"VA": slice(2, 3), "EXPR": slice(0, 2)}
    expected = L.vad_distill_loss(logits["VAD"].flatten(0, 1), torch.tensor([0.2, 0.3, 0.5, 1.0, 0.9, 0.1]))
    assert _voice_activity_loss(logits, batch, slices).item() == pytest.approx(expected.item(), rel=1e-6)
    assert _voice_activity_loss({"VA": torch.zeros(3, 2, 40)}, batch, slices) is None
    with pytest.raises(ValueError, match="has no 'vad' targets"):
        _voice_activity_loss(logits, {"VA": {}, "EXPR": batch["EXPR"]}, slices)


def test_window_mean_against_a_loop():
    rng = np.random.default_rng(2)
    series, hop, fps, frames, window = rng.random(90), 512, 30.0, 45, 10_080
    got = window_mean(series, hop, fps, frames, window)
    starts = window_centres(frames, fps) - window // 2
    for k in range(frames):
        values = []
        for j in range(-50, len(series) + 50):  # points before and after the track count as silence
            if starts[k] <= hop * j + hop / 2 < starts[k] + window:
                values.append(series[j] if 0 <= j < len(series) else 0.0)
        assert got[k] == pytest.approx(np.mean(values), rel=1e-6), k


@pytest.fixture(scope="module")
def silero(require_extra):
    threads = torch.get_num_threads()
    require_extra("silero_vad", "vad")
    torch.set_num_threads(threads)  # importing silero_vad sets torch's threads to 1 for the process
    from emenet.models.vad_teacher import SileroVAD
    return SileroVAD()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_silero_batched_streaming_matches_its_own_wrapper(silero):
    from emenet.models.vad_teacher import SILERO_JIT, _silero_data_dir
    wrapper = torch.jit.load(str(_silero_data_dir() / SILERO_JIT), map_location="cpu").eval()
    rng = np.random.default_rng(3)
    t = np.arange(SR) / SR
    voiced = (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    tracks = [np.concatenate([voiced, 0.01 * rng.standard_normal(7000).astype(np.float32)]),
              0.02 * rng.standard_normal(5000).astype(np.float32)]  # different lengths, batched together
    got = silero.chunk_probabilities(tracks)
    for track, probs in zip(tracks, got):
        wrapper.reset_states()
        padded = np.pad(track, (0, -len(track) % 512))
        with torch.no_grad():
            ref = [float(wrapper(torch.from_numpy(padded[i:i + 512])[None], SR)[0, 0]) for i in range(0, len(padded), 512)]
        np.testing.assert_allclose(probs, ref, atol=1e-5)


def test_silero_hears_speech_in_the_real_video_and_not_in_noise(silero, shared_dir):
    from emenet.audio import decode_audio
    track = decode_audio(shared_dir / "data" / "utterance_1.mp4")
    speech = silero.frame_probabilities([track.samples], [track.fps], [track.num_frames], W)[0]
    noise = np.random.default_rng(4).standard_normal(3 * SR).astype(np.float32) * 0.003
    quiet = silero.frame_probabilities([noise], [30.0], [90], W)[0]
    assert speech.shape == (track.num_frames,) and np.median(speech) > 0.8
    assert quiet.max() < 0.2


def _fake_vad_nemo(path: Path) -> torch.nn.Module:
    """A .nemo archive (tar: model_weights.ckpt + model_config.yaml) of a random 2-class MarbleNet."""
    from emenet.models.marblenet import MarbleNet
    torch.manual_seed(7)
    net = MarbleNet(num_classes=2).eval()
    weights, config = io.BytesIO(), yaml.safe_dump({"labels": ["background", "speech"]}).encode()
    torch.save(net.state_dict(), weights)
    with tarfile.open(path, "w") as tar:
        for name, data in (("model_weights.ckpt", weights.getvalue()), ("model_config.yaml", config)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return net


def test_nemo_vad_teacher_classifies_each_frames_window(tmp_path):
    net = _fake_vad_nemo(tmp_path / "vad_marblenet.nemo")
    teacher = MarbleNetVAD(tmp_path / "vad_marblenet.nemo", batch_windows=7)  # batches that split the frames
    samples = np.random.default_rng(5).standard_normal(2 * SR).astype(np.float32) * 0.1
    got = teacher.frame_probabilities([samples], [25.0], [20], W)[0]
    with torch.no_grad():
        expected = net.classify(torch.from_numpy(frame_windows(samples, 25.0, 20))).softmax(-1)[:, 1].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert teacher.identity.startswith("marblenet-")


def test_audio_branch_starts_from_a_nemo_marblenet(tmp_path):
    from emenet.training.run import build_model
    net = _fake_vad_nemo(tmp_path / "marblenet.nemo")
    model = build_model(TrainConfig(modality="audiovisual", pretrained_audio_backbone=str(tmp_path / "marblenet.nemo")))
    assert isinstance(model, emenet.EMENetVA)
    expected = {k: v for k, v in net.state_dict().items() if not k.startswith("decoder.")}  # NeMo's decoder dropped
    got = model.audio_backbone.state_dict()
    assert got.keys() == expected.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0, msg=key)
    with pytest.raises(EMENetInputError, match="needs the audio-visual model"):
        build_model(TrainConfig(pretrained_audio_backbone=str(tmp_path / "marblenet.nemo")))


def test_vad_head_trains_with_the_nemo_teacher_and_targets_are_cached(tmp_path):
    _fake_vad_nemo(tmp_path / "vad.nemo")
    root = _make_layout(tmp_path / "data", num_frames=40, clicks=(3,))
    _make_layout(root, name="val", num_frames=30, split="Validation_Set")
    cfg = TrainConfig(data_root=str(root), checkpoints_dir=str(tmp_path / "ck"), loggings_dir=str(tmp_path / "logs"),
                      cache_dir=str(tmp_path / "cache"), name="va", tasks=["VA"], modality="audiovisual",
                      auxiliary=["VAD"], vad_teacher=str(tmp_path / "vad.nemo"), seq_len=3, batch_size=1,
                      max_steps_per_epoch=1, nepochs=1, val_seq_len=16, num_workers=0)
    result = train_teacher(cfg, progress=False)
    assert result.history[0]["train_loss_VAD"] > 0
    targets = list((tmp_path / "cache" / "audio").glob("*.vad-marblenet-*-w10080-fps25.npy"))
    assert len(targets) == 1 and np.load(targets[0]).shape == (40,)  # train videos only, one value per frame
    model = emenet.load_checkpoint(result.run_dir / "net_epoch_1_va.pth")
    assert isinstance(model, emenet.EMENetVA) and model.tasks == ("VA", "VAD")


# --- audio-visual distillation rounds end to end ---------------------------------------------------

@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from emenet.data.synth import generate_synthetic_dataset
    root = tmp_path_factory.mktemp("va_rounds_data")
    generate_synthetic_dataset(root, num_videos=5, seed=11, min_frames=30, max_frames=34, two_person_videos=0,
                               num_test_videos=0, overwrite=True, progress=False)  # 2 validation videos
    return root


@pytest.mark.slow
def test_audiovisual_rounds_through_the_shell_script(synth_root, tmp_path, silero):
    args = ["bash", str(REPO / "Train_Multimodal" / "run_student_rounds.sh"), "--data_root", str(synth_root),
            "--members", "2", "--rounds", "1", "--checkpoints_dir", str(tmp_path / "ck"),
            "--loggings_dir", str(tmp_path / "logs"), "--annotations_dir", str(tmp_path / "ann"),
            "--cache_dir", str(tmp_path / "cache"), "--auxiliary", "VAD", "--nepochs", "1",
            "--max_steps_per_epoch", "2", "--seq_len", "4", "--batch_size", "1", "--val_seq_len", "32",
            "--num_workers", "0"]
    env = {**os.environ, "EMENET_BIN": str(Path(sys.executable).parent / "emenet")}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    # audio decoded once per video into the cache, VAD targets beside the tracks
    audio = tmp_path / "cache" / "audio"
    assert len(list(audio.glob("*.16000hz.npy"))) == 5
    assert list(audio.glob("*.vad-silero-vad-*.npy"))
    for name in ("teacher_exp_0", "teacher_exp_1", "student_round_1_exp_0", "student_round_1_exp_1"):
        ckpt = tmp_path / "ck" / name / f"net_epoch_1_{name}.pth"
        model = emenet.load_checkpoint(ckpt)
        assert isinstance(model, emenet.EMENetVA) and model.tasks == ("EXPR", "AU", "VA", "VAD"), name
        assert model.config.audio_window == W
        history = json.loads((tmp_path / "ck" / name / "history.json").read_text())
        assert history["epochs"][0]["train_loss_VAD"] >= 0
    manifest = json.loads((tmp_path / "ann" / "round_0" / "manifest.json").read_text())
    assert manifest["complete"] and [m["name"] for m in manifest["members"]] == ["teacher_exp_0", "teacher_exp_1"]
    videos = pd.read_parquet(tmp_path / "ann" / "round_0" / "videos.parquet")
    frames = pd.read_parquet(tmp_path / "ann" / "round_0" / "frames" / f"{videos['name'][0]}.parquet")
    assert {"frame", "m0.AU.0", "m1.VA.39", "valence"} <= set(frames.columns)
    assert not any(".VAD." in c for c in frames.columns)  # the auxiliary head is no soft label
    table = pd.read_csv(tmp_path / "ann" / "summary.csv")
    assert list(table["method"]) == ["teacher_exp_0", "teacher_exp_1", "ensemble",
                                     "student_round_1_exp_0", "student_round_1_exp_1", "ensemble"]
    for col in ("AU_score", "EXPR_score", "VA_ccc_valence", "total_score", "EXPR_ece"):
        assert table[col].notna().all(), col

    # a reloaded member scores exactly what its run logged (the audio is cut the same way)
    from emenet.training.validate import validate_checkpoint
    ckpt = tmp_path / "ck" / "teacher_exp_0" / "net_epoch_1_teacher_exp_0.pth"
    rescored = validate_checkpoint(ckpt, synth_root, cache_dir=str(tmp_path / "cache"), progress=False)
    logged = json.loads((tmp_path / "ck" / "teacher_exp_0" / "history.json").read_text())["epochs"][0]
    for key, value in rescored.items():
        assert value == pytest.approx(logged[key], abs=1e-6), key
    assert table.loc[0, "total_score"] == pytest.approx(rescored["total_score"], abs=1e-6)

    # ensemble validation of the audio-visual students through the Train_Multimodal script
    script = [sys.executable, str(REPO / "Train_Multimodal" / "validate_ensemble.py"), "--data_root", str(synth_root),
              "--names", "student_round_1_exp_0", "student_round_1_exp_1", "--load_epochs", "1",
              "--checkpoints_dir", str(tmp_path / "ck"), "--cache_dir", str(tmp_path / "cache"),
              "--mc_dropout_passes", "1", "--chunk", "32", "--no_progress", "--out", str(tmp_path / "val")]
    val = subprocess.run(script, capture_output=True, text=True, timeout=600)
    assert val.returncode == 0, val.stderr[-3000:]
    metrics = pd.read_csv(tmp_path / "val" / "metrics.csv")
    assert list(metrics["method"]) == ["member_0", "member_1", "ensemble", "temperature_scaled", "mc_dropout"]
    assert metrics["eval_total_score"].notna().all()
    ensemble = metrics.set_index("method").loc["ensemble"]
    assert ensemble["total_score"] == pytest.approx(table.iloc[-1]["total_score"], abs=1e-5)
    from emenet.distill.members import members_from_names
    from emenet.evaluation.validate_ensemble import load_ensemble_members
    students = members_from_names(["student_round_1_exp_0"], [1], tmp_path / "ck")
    with pytest.raises(EMENetInputError, match=r"trained on 0.63 s audio windows \(10080 samples\), but --window_size"):
        load_ensemble_members(students, "cpu", window_size=0.5)
