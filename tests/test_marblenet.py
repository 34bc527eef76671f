"""MarbleNet 3x2x64: NeMo's key layout, native front-end buffers, golden audio arrays, NeMo loaders."""
from __future__ import annotations

import io
import json
import math
import tarfile

import numpy as np
import pytest
import torch
import yaml

from emenet.errors import EMENetInputError
from emenet.models.checkpoint import load_state_dict_strict
from emenet.models.marblenet import MarbleNet, load_nemo_marblenet

N_ENCODER_PARAMS = 88_896  # the shared reference's n_params_encoder (= EMENet-VA's audio_backbone)
N_DECODER_PARAMS = 258  # Linear(128, 2)
BUFFERS = ("preprocessor.featurizer.dct_mat", "preprocessor.featurizer.MelSpectrogram.spectrogram.window",
           "preprocessor.featurizer.MelSpectrogram.mel_scale.fb")
AUDIO_PREFIX = "audio_backbone."


@pytest.fixture(scope="module")
def nemo_reference(reference_dir) -> dict:
    return json.loads((reference_dir / "nemo_marblenet_3x2x64_state_dict.json").read_text())


@pytest.fixture(scope="module")
def original_audio_state(reference_dir) -> dict[str, torch.Tensor]:
    """`audio_backbone.*` of the original EMENet-VA checkpoint, prefix stripped (NeMo's names)."""
    sd = torch.load(reference_dir / "emenet_va_net_epoch_3.pth", map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix(AUDIO_PREFIX): v for k, v in sd.items() if k.startswith(AUDIO_PREFIX)}


@pytest.fixture(scope="module")
def golden(reference_dir):
    return np.load(reference_dir / "emenet_va_golden_io.npz")


@pytest.fixture(scope="module")
def original_marblenet(original_audio_state) -> MarbleNet:
    net = MarbleNet().eval()
    load_state_dict_strict(net, original_audio_state, "emenet_va_net_epoch_3.pth audio_backbone")
    return net


def _shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def test_key_layout_is_nemos(nemo_reference):
    nemo = {k: v["shape"] for k, v in nemo_reference["state_dict"].items()}
    assert _shapes(MarbleNet(num_classes=2)) == nemo  # with NeMo's decoder: every key and shape
    assert _shapes(MarbleNet()) == {k: s for k, s in nemo.items() if not k.startswith("decoder.")}
    assert sum(p.numel() for p in MarbleNet().parameters()) == nemo_reference["n_params_encoder"]
    assert sum(p.numel() for p in MarbleNet(num_classes=2).parameters()) == nemo_reference["n_params_total"]


def test_parameter_counts_without_reference():
    assert sum(p.numel() for p in MarbleNet().parameters()) == N_ENCODER_PARAMS
    assert sum(p.numel() for p in MarbleNet(num_classes=2).parameters()) == N_ENCODER_PARAMS + N_DECODER_PARAMS
    assert sum(p.numel() for p in MarbleNet().preprocessor.parameters()) == 0  # fixed buffers only


def test_native_front_end_buffers_equal_nemos(original_audio_state):
    """The original checkpoint carries NeMo's own buffers; ours are computed natively."""
    fresh = MarbleNet().state_dict()
    for key in BUFFERS:
        torch.testing.assert_close(fresh[key], original_audio_state[key], rtol=0, atol=0, msg=key)


def test_front_end_buffers_by_their_definitions():
    fresh = MarbleNet().state_dict()
    n = np.arange(400)
    np.testing.assert_allclose(fresh[BUFFERS[1]].numpy(), 0.5 - 0.5 * np.cos(2 * np.pi * n / 400), atol=1e-6)
    dct = fresh[BUFFERS[0]].numpy().astype(np.float64)
    np.testing.assert_allclose(dct.T @ dct, np.eye(64), atol=1e-5)  # orthonormal DCT-II
    np.testing.assert_allclose(dct[:, 0], 1 / math.sqrt(64), atol=1e-7)
    fb = fresh[BUFFERS[2]].numpy()
    freqs = np.linspace(0, 8000, 257)
    mel = 2595 * np.log10(1 + freqs / 700)
    peaks = freqs[fb.argmax(0)]  # each filter peaks near its HTK mel centre, in increasing order
    centres_mel = np.linspace(0, 2595 * np.log10(1 + 8000 / 700), 66)[1:-1]
    assert np.all(np.diff(peaks) >= 0) and fb.max() <= 1.0 and fb.min() == 0.0
    assert np.abs(2595 * np.log10(1 + peaks / 700) - centres_mel).max() < np.diff(mel).max() * 30


def _numpy_mfcc(audio: np.ndarray, window: np.ndarray, fb: np.ndarray, dct: np.ndarray) -> np.ndarray:
    """An independent float64 statement of the front end: centred, reflect-padded STFT, power,
    mel, log(+1e-6), DCT."""
    n_fft, hop = 512, 160
    padded = np.pad(audio.astype(np.float64), [(0, 0), (n_fft // 2, n_fft // 2)], mode="reflect")
    n_frames = 1 + audio.shape[1] // hop
    idx = np.arange(n_frames)[:, None] * hop + np.arange(n_fft)[None, :]
    lpad = (n_fft - len(window)) // 2
    win = np.zeros(n_fft)
    win[lpad:lpad + len(window)] = window
    power = np.abs(np.fft.rfft(padded[:, idx] * win, axis=-1)) ** 2  # (N, frames, 257)
    return (np.log(power @ fb + 1e-6) @ dct).transpose(0, 2, 1)  # (N, 64, frames)


def test_golden_audio_arrays(original_marblenet, golden):
    audio = torch.from_numpy(golden["audio"])  # (6, 10080)
    with torch.no_grad():
        mfcc, lengths = original_marblenet.mfcc(audio)
        encoded = original_marblenet(audio)
        feature = original_marblenet.features(audio)
    assert mfcc.shape == (6, 64, 64) and lengths.tolist() == [63] * 6  # NeMo: ceil(10080 / 160)
    # MFCCs reach |28|: a float32 DCT over 64 log-mel values carries rounding of ~1e-5 there whose
    # exact value depends on the CPU's FFT and matrix kernels (1.5e-5 on an Intel Xeon, under 1e-5
    # on an AMD EPYC); 5e-5 is ~2e-6 of the array's scale. The encoder's outputs stay within 1e-5.
    np.testing.assert_allclose(mfcc.numpy(), golden["mfcc"], atol=5e-5)
    np.testing.assert_allclose(encoded.numpy(), golden["encoder_output"], atol=1e-5)
    np.testing.assert_allclose(feature.numpy(), golden["audio_feature"], atol=1e-5)
    # one window alone gives the same numbers as in its batch: no per-batch normalisation
    with torch.no_grad():
        alone = original_marblenet.features(audio[3:4])
    np.testing.assert_allclose(alone.numpy(), golden["audio_feature"][3:4], atol=1e-6)


def test_golden_mfcc_against_independent_numpy_front_end(original_audio_state, golden):
    ref = _numpy_mfcc(golden["audio"], *(original_audio_state[k].double().numpy() for k in
                                          (BUFFERS[1], BUFFERS[2], BUFFERS[0])))
    np.testing.assert_allclose(ref, golden["mfcc"], atol=2e-4, rtol=1e-5)


def test_masking_of_the_last_frame_is_what_the_golden_numbers_need(original_marblenet, golden):
    """Without NeMo's mask (a valid length of 64 frames) the encoder output differs."""
    audio = torch.from_numpy(golden["audio"])
    with torch.no_grad():
        unmasked = original_marblenet(audio, lengths=torch.full((6,), 64 * 160))
    assert np.abs(unmasked.numpy() - golden["encoder_output"]).max() > 1e-3  # the receptive field spans all 64 frames


def test_forward_backward_every_parameter_gets_gradient():
    torch.manual_seed(0)
    net = MarbleNet(num_classes=2).train()
    logits = net.classify(torch.randn(4, 10080) * 0.1)
    logits.square().mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert logits.shape == (4, 2)


def test_other_window_lengths_and_valid_lengths():
    net = MarbleNet().eval()
    with torch.no_grad():
        out = net(torch.randn(2, 8000) * 0.1)
        _, lengths = net.mfcc(torch.zeros(2, 8000), torch.tensor([8000, 4000]))
    assert out.shape == (2, 128, 51) and lengths.tolist() == [50, 25]
    with pytest.raises(ValueError, match=r"\(N, samples\)"):
        net(torch.zeros(2, 3, 8000))


# ---- NeMo files ---------------------------------------------------------------------------

def _nemo_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A NeMo-layout state dict with random weights and statistics (decoder included)."""
    torch.manual_seed(seed)
    net = MarbleNet(num_classes=2)
    state = net.state_dict()
    for key, value in state.items():
        if value.is_floating_point() and key not in BUFFERS:
            state[key] = torch.rand_like(value) + 0.5 if "running_var" in key else torch.randn_like(value) * 0.1
    return state


def _write_nemo(path, state: dict[str, torch.Tensor], config_yaml: str | None) -> None:
    with tarfile.open(path, "w:gz") as tar:
        members = {"./model_weights.ckpt": None, "./model_config.yaml": config_yaml}
        for name, text in members.items():
            if name.endswith(".ckpt"):
                buf = io.BytesIO()
                torch.save(state, buf)
                data = buf.getvalue()
            elif text is None:
                continue
            else:
                data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_nemo_archive_loads_strictly(tmp_path, nemo_reference):
    state = _nemo_state()
    path = tmp_path / "vad_marblenet.nemo"
    _write_nemo(path, state, nemo_reference["config_yaml"])  # NeMo's own config for 3x2x64
    vad = load_nemo_marblenet(path, num_classes=2)
    encoder_only = load_nemo_marblenet(path)  # the decoder is dropped
    assert not vad.training and encoder_only.decoder is None
    for key, value in vad.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=key)
    x = torch.randn(3, 10080) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(vad(x), encoder_only(x))
        manual = vad(x).mean(-1) @ state["decoder.decoder_layers.0.weight"].T + state["decoder.decoder_layers.0.bias"]
        torch.testing.assert_close(vad.classify(x), manual)


def test_bare_nemo_state_dict_loads(tmp_path):
    state = _nemo_state(1)
    torch.save(state, tmp_path / "model_weights.ckpt")
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "lightning.ckpt")
    for name in ("model_weights.ckpt", "lightning.ckpt"):
        net = load_nemo_marblenet(tmp_path / name)
        torch.testing.assert_close(net.state_dict()["encoder.encoder.5.mconv.0.conv.weight"],
                                   state["encoder.encoder.5.mconv.0.conv.weight"])


def test_foreign_nemo_files_are_refused_with_names(tmp_path, nemo_reference):
    state = _nemo_state()
    extra = {**state, "encoder.encoder.6.mconv.0.conv.weight": torch.zeros(3, 3, 1)}
    torch.save(extra, tmp_path / "extra.ckpt")
    with pytest.raises(EMENetInputError, match=r"unexpected \['encoder.encoder.6.mconv.0.conv.weight'\]"):
        load_nemo_marblenet(tmp_path / "extra.ckpt")
    missing = {k: v for k, v in state.items() if k != BUFFERS[2]}
    torch.save(missing, tmp_path / "missing.ckpt")
    with pytest.raises(EMENetInputError, match="missing .*mel_scale.fb"):
        load_nemo_marblenet(tmp_path / "missing.ckpt")
    wider = {**state, "encoder.encoder.0.mconv.0.conv.weight": torch.zeros(64, 1, 13)}
    torch.save(wider, tmp_path / "wider.ckpt")
    with pytest.raises(EMENetInputError, match=r"encoder.encoder.0.mconv.0.conv.weight: \(64, 1, 13\) != \(64, 1, 11\)"):
        load_nemo_marblenet(tmp_path / "wider.ckpt")
    # same shapes, other dilation: only the archive's config can tell
    config = yaml.safe_load(nemo_reference["config_yaml"])
    config["encoder"]["jasper"][4]["dilation"] = [1]
    _write_nemo(tmp_path / "undilated.nemo", state, yaml.safe_dump(config))
    with pytest.raises(EMENetInputError, match="encoder blocks"):
        load_nemo_marblenet(tmp_path / "undilated.nemo")
    config = yaml.safe_load(nemo_reference["config_yaml"])
    config["preprocessor"]["n_fft"] = 400
    _write_nemo(tmp_path / "fft.nemo", state, yaml.safe_dump(config))
    with pytest.raises(EMENetInputError, match="preprocessor settings {'n_fft': 400}"):
        load_nemo_marblenet(tmp_path / "fft.nemo")
    with tarfile.open(tmp_path / "empty.nemo", "w") as tar:
        info = tarfile.TarInfo("model_config.yaml")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(EMENetInputError, match="without model_weights.ckpt"):
        load_nemo_marblenet(tmp_path / "empty.nemo")
    (tmp_path / "junk.nemo").write_bytes(b"junk")
    with pytest.raises(EMENetInputError, match="junk.nemo: not a readable NeMo model"):
        load_nemo_marblenet(tmp_path / "junk.nemo")
    with pytest.raises(EMENetInputError, match="not found"):
        load_nemo_marblenet(tmp_path / "absent.nemo")


def test_nemo_file_with_pickled_object_is_refused(tmp_path):
    import argparse  # any object outside torch's weights-only allow-list
    torch.save({"state_dict": _nemo_state(), "cfg": argparse.Namespace(lr=1)}, tmp_path / "evil.ckpt")
    with pytest.raises(EMENetInputError, match="not a readable NeMo model"):
        load_nemo_marblenet(tmp_path / "evil.ckpt")
