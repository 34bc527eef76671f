"""EMENet-VA: golden parity with the original, key layout, parameter counts, registry, checkpoints, MACs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import emenet
from emenet.errors import EMENetInputError
from emenet.models.emenet_va import EMENetVA, EMENetVAConfig
from emenet.profiling import PAPER_REFERENCE, format_report, macs_per_frame, model_report

TASKS = ("EXPR", "AU", "VA")
N_PARAMS, N_VIDEO, N_AUDIO = 1_920_891, 937_344, 88_896  # reference README, section 4
WINDOW = 10_080


def _gru_head(num_outputs: int, feature: int = 640, hidden: int = 128) -> int:
    return 3 * (feature * hidden + hidden * hidden) + 2 * 3 * hidden + hidden * num_outputs + num_outputs


@pytest.fixture(scope="module")
def golden(reference_dir):
    return np.load(reference_dir / "emenet_va_golden_io.npz")


@pytest.fixture(scope="module")
def original(reference_dir) -> EMENetVA:
    return emenet.load_checkpoint(reference_dir / "emenet_va_net_epoch_3.pth")


def test_original_checkpoint_is_recognised_and_sized(original):
    assert isinstance(original, EMENetVA) and not original.training
    assert original.config == EMENetVAConfig(tasks=TASKS)  # GRU, 128 hidden, 1 layer; 10080-sample windows
    assert sum(p.numel() for p in original.parameters()) == N_PARAMS
    assert sum(p.numel() for p in original.video_backbone.parameters()) == N_VIDEO
    assert sum(p.numel() for p in original.audio_backbone.parameters()) == N_AUDIO
    assert original.backbone is original.video_backbone


def test_original_checkpoint_reproduces_golden_outputs(original, golden):
    frames, audio = torch.from_numpy(golden["frames"]), torch.from_numpy(golden["audio"])  # (6, 3, 112, 112), (6, 10080)
    with torch.no_grad():
        independent, _ = original(frames[:, None], audio[:, None])  # six sequences of length 1
        stream, hidden = original(frames[None], audio[None])  # one sequence of length 6
        step_logits, h = [], None
        for t in range(6):  # one frame at a time, carrying the hidden state
            out, h = original(frames[None, t:t + 1], audio[None, t:t + 1], h)
            step_logits.append(out)
    for task in TASKS:
        np.testing.assert_allclose(independent[task][:, 0].numpy(), golden[f"independent_logits_{task}"], atol=1e-5)
        np.testing.assert_allclose(stream[task][0].numpy(), golden[f"stream_logits_{task}"], atol=1e-5)
        np.testing.assert_allclose(hidden[task].numpy(), golden[f"stream_final_hidden_{task}"], atol=1e-5)
        stepped = torch.cat([s[task][0] for s in step_logits]).numpy()
        np.testing.assert_allclose(stepped, golden[f"stream_logits_{task}"], atol=1e-5)


def test_audio_branch_reproduces_golden_arrays(original, golden):
    audio = torch.from_numpy(golden["audio"])
    with torch.no_grad():
        mfcc, _ = original.audio_backbone.mfcc(audio)
        encoded = original.audio_backbone(audio)
        feature = original.encode_audio(audio.view(2, 3, WINDOW))  # (B, T, 128)
    # MFCCs reach |28|; their float32 rounding depends on the CPU (tests/test_marblenet.py says more)
    np.testing.assert_allclose(mfcc.numpy(), golden["mfcc"], atol=5e-5)
    np.testing.assert_allclose(encoded.numpy(), golden["encoder_output"], atol=1e-5)
    assert feature.shape == (2, 3, 128)
    np.testing.assert_allclose(feature.reshape(6, 128).numpy(), golden["audio_feature"], atol=1e-5)


def test_registered_model_matches_original_key_layout(reference_dir):
    expected = json.loads((reference_dir / "emenet_va_state_dict_shapes.json").read_text())
    actual = {k: list(v.shape) for k, v in emenet.create_model("emenet_va").state_dict().items()}
    assert actual == expected
    assert list(actual)[:3] == list(expected)[:3]  # video_backbone first, as in the original


def test_audio_backbone_keys_are_nemos_without_decoder(reference_dir):
    nemo = json.loads((reference_dir / "nemo_marblenet_3x2x64_state_dict.json").read_text())["state_dict"]
    nemo = {k: v["shape"] for k, v in nemo.items() if not k.startswith("decoder.")}
    audio = {k.removeprefix("audio_backbone."): list(v.shape)
             for k, v in emenet.create_model("emenet_va").state_dict().items() if k.startswith("audio_backbone.")}
    assert audio == nemo


def test_parameter_counts_without_reference():
    assert sum(p.numel() for p in emenet.create_model("emenet_va").parameters()) == N_PARAMS
    assert N_PARAMS == N_VIDEO + N_AUDIO + sum(_gru_head(c) for c in (7, 12, 40))
    aux = emenet.create_model("emenet_va_aux")
    assert aux.tasks == ("EXPR", "AU", "VA", "FA", "VAD")
    assert sum(p.numel() for p in aux.parameters()) == N_PARAMS + _gru_head(136) + _gru_head(2) == 2_530_053
    assert aux.state_dict()["tmodels.4.decoder.weight"].shape == (2, 128)  # VAD: (background, speech)


@pytest.mark.parametrize("name,kind", [("emenet_va", "GRU"), ("emenet_va", "transformer"), ("emenet_va_aux", "LSTM")])
def test_forward_backward_every_parameter_gets_gradient(name, kind):
    torch.manual_seed(0)
    model = emenet.create_model(name, temporal_model=kind).train()
    logits, hidden = model(torch.rand(2, 3, 3, 112, 112), torch.randn(2, 3, WINDOW) * 0.1)
    sum(v.square().mean() for v in logits.values()).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    for task, v in logits.items():
        assert v.shape == (2, 3, emenet.TASKS[task].num_logits)


def test_streaming_equals_whole_sequence():
    torch.manual_seed(0)
    model = emenet.create_model("emenet_va").eval()
    frames, audio = torch.rand(2, 5, 3, 112, 112), torch.randn(2, 5, WINDOW) * 0.1
    with torch.no_grad():
        whole, _ = model(frames, audio)
        first, h = model(frames[:, :2], audio[:, :2])
        rest, _ = model(frames[:, 2:], audio[:, 2:], h)
    for task in model.tasks:
        np.testing.assert_allclose(torch.cat([first[task], rest[task]], 1).numpy(), whole[task].numpy(), atol=1e-5)


def test_heads_see_visual_then_audio_features(original, golden):
    """forward = EMENet.forward_features on [encode_frames | encode_audio]."""
    frames, audio = torch.from_numpy(golden["frames"])[None], torch.from_numpy(golden["audio"])[None]
    with torch.no_grad():
        features = original.encode(frames, audio)
        logits, _ = original.forward_features(torch.cat([original.encode_frames(frames),
                                                         original.encode_audio(audio)], dim=-1))
    assert features.shape == (1, 6, 640)
    np.testing.assert_allclose(features[0, :, 512:].numpy(), golden["audio_feature"], atol=1e-5)
    np.testing.assert_allclose(logits["VA"][0].numpy(), golden["stream_logits_VA"], atol=1e-5)


def test_own_checkpoint_roundtrip_keeps_config_and_outputs(tmp_path):
    torch.manual_seed(0)
    model = emenet.create_model("emenet_va_aux", temporal_model="LSTM", hidden_size=64, audio_window=8000).eval()
    path = emenet.save_checkpoint(tmp_path / "va" / "net_epoch_2_va.pth", model, epoch=2)
    assert torch.load(path, weights_only=True)["arch"] == "EMENetVA"
    loaded = emenet.load_checkpoint(path)
    assert isinstance(loaded, EMENetVA) and loaded.config == model.config
    frames, audio = torch.rand(1, 2, 3, 112, 112), torch.randn(1, 2, 8000) * 0.1
    with torch.no_grad():
        a, _ = model(frames, audio)
        b, _ = loaded(frames, audio)
    for task in model.tasks:
        torch.testing.assert_close(a[task], b[task])


def test_original_layout_with_aux_heads_and_other_order_is_inferred(tmp_path):
    model = emenet.create_model("emenet_va_aux").eval()
    sd = model.state_dict()
    order = {0: 4, 4: 0}  # VAD trained as the first head, EXPR as the last
    swapped = {}
    for k, v in sd.items():
        if k.startswith("tmodels."):
            i, rest = k.split(".", 2)[1:]
            k = f"tmodels.{order.get(int(i), int(i))}.{rest}"
        swapped[k] = v
    torch.save({"state_dict": swapped, "epoch": 1}, tmp_path / "orig.pth")
    loaded = emenet.load_checkpoint(tmp_path / "orig.pth")
    assert isinstance(loaded, EMENetVA) and loaded.tasks == ("EXPR", "AU", "VA", "FA", "VAD")
    for (ka, a), (kb, b) in zip(sd.items(), loaded.state_dict().items()):
        assert ka == kb
        torch.testing.assert_close(a, b)


def test_bad_inputs_and_checkpoints_give_one_line_errors(tmp_path):
    model = emenet.create_model("emenet_va").eval()
    with pytest.raises(ValueError, match=r"audio of shape \(B, T, 10080\)"):
        model(torch.rand(1, 2, 3, 112, 112), torch.zeros(1, 2, 16000))
    with pytest.raises(ValueError, match="disagree"):
        model(torch.rand(1, 2, 3, 112, 112), torch.zeros(1, 3, WINDOW))
    with pytest.raises(EMENetInputError, match="16000 Hz"):
        EMENetVAConfig(sample_rate=44_100)
    with pytest.raises(EMENetInputError, match="audio_window"):
        EMENetVAConfig(audio_window=100)
    sd = model.state_dict()
    no_audio = {k: v for k, v in sd.items() if not k.startswith("audio_backbone.")}
    torch.save({"state_dict": no_audio, "epoch": 1}, tmp_path / "no_audio.pth")
    with pytest.raises(EMENetInputError, match="without its 'audio_backbone.*' keys"):
        emenet.load_checkpoint(tmp_path / "no_audio.pth")
    partial = {k: v for k, v in sd.items() if k != "audio_backbone.encoder.encoder.3.res.0.0.conv.weight"}
    torch.save({"state_dict": partial, "epoch": 1}, tmp_path / "partial.pth")
    with pytest.raises(EMENetInputError, match=r"missing \['audio_backbone.encoder.encoder.3.res.0.0.conv.weight'\]"):
        emenet.load_checkpoint(tmp_path / "partial.pth")
    torch.save({"state_dict": {"foo.weight": torch.zeros(1)}, "epoch": 1}, tmp_path / "foreign.pth")
    with pytest.raises(EMENetInputError, match="neither"):
        emenet.load_checkpoint(tmp_path / "foreign.pth")
    torch.save({"state_dict": sd, "epoch": 1, "config": model.config.to_dict(), "arch": "EMENetX"}, tmp_path / "arch.pth")
    with pytest.raises(EMENetInputError, match="unknown model class 'EMENetX'"):
        emenet.load_checkpoint(tmp_path / "arch.pth")


def test_registry_lists_the_va_models():
    assert {"emenet_va", "emenet_va_aux"} <= set(emenet.list_models())


def test_macs_per_frame_beside_the_paper():
    macs = macs_per_frame(emenet.create_model("emenet_va").eval(), seq_len=2)
    heads = {t: 3 * (640 * 128 + 128 * 128) + 128 * c for t, c in (("EXPR", 7), ("AU", 12), ("VA", 40))}
    assert macs["per_head"] == heads  # GRU(640 -> 128) + decoder, by hand
    assert macs["backbone"] == 220_899_840  # MobileFaceNet, as in EMENet-V
    # MarbleNet per window of 64 frames: mel (257 x 64) and DCT (64 x 64) products, then
    # the convolutions (depthwise: C x k, pointwise: C_in x C_out per frame), by hand
    front = 64 * (257 * 64 + 64 * 64)
    convs = 64 * (64 * 11 + 64 * 128                                        # block 0
                  + 128 * 13 + 128 * 64 + 64 * 13 + 64 * 64 + 128 * 64      # block 1 with residual
                  + 2 * (64 * 15 + 64 * 64) + 64 * 64                       # block 2
                  + 2 * (64 * 17 + 64 * 64) + 64 * 64                       # block 3
                  + 64 * 29 + 64 * 128                                      # block 4 (dilated)
                  + 128 * 128)                                              # block 5
    assert macs["audio_backbone"] == front + convs == 6_881_280
    assert macs["total"] == 220_899_840 + 6_881_280 + sum(heads.values()) == 228_673_408
    assert macs["other"] == 0
    paper = PAPER_REFERENCE["emenet_va"].macs_per_frame  # 234M
    assert 0.95 * paper < macs["total"] < paper
    report = model_report("emenet_va", seq_len=1)
    assert "audio backbone" in format_report(report) and "234M" in format_report(report)
