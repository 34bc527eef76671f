"""Model tests: golden parity with the original, parameter counts, registry, checkpoints."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import emenet
from emenet.errors import EMENetInputError
from emenet.models.temporal import TEMPORAL_KINDS

GOLDEN = [("emenet_v_net_epoch_4.pth", "emenet_v_golden_io.npz", ("EXPR", "AU", "VA"), 1_684_539),
          ("emenet_v_aux_net_epoch_4.pth", "emenet_v_aux_golden_io.npz", ("EXPR", "AU", "VA", "FA"), 1_948_611)]


@pytest.mark.parametrize("ckpt,golden,tasks,n_params", GOLDEN)
def test_original_checkpoint_reproduces_golden_outputs(reference_dir, ckpt, golden, tasks, n_params):
    model = emenet.load_checkpoint(reference_dir / ckpt)
    g = np.load(reference_dir / golden)
    frames = torch.from_numpy(g["frames"])  # (6, 3, 112, 112)
    assert model.tasks == tasks
    assert sum(p.numel() for p in model.parameters()) == n_params
    with torch.no_grad():
        independent, _ = model(frames[:, None])  # six sequences of length 1
        stream, hidden = model(frames[None])  # one sequence of length 6
        step_logits, h = [], None
        for t in range(6):  # one frame at a time, carrying the hidden state
            out, h = model(frames[None, t:t + 1], hidden=h)
            step_logits.append(out)
    for task in tasks:
        np.testing.assert_allclose(independent[task][:, 0].numpy(), g[f"independent_logits_{task}"], atol=1e-5)
        np.testing.assert_allclose(stream[task][0].numpy(), g[f"stream_logits_{task}"], atol=1e-5)
        np.testing.assert_allclose(hidden[task].numpy(), g[f"stream_final_hidden_{task}"], atol=1e-5)
        stepped = torch.cat([s[task][0] for s in step_logits]).numpy()
        np.testing.assert_allclose(stepped, g[f"stream_logits_{task}"], atol=1e-5)


@pytest.mark.parametrize("ckpt,golden,tasks,n_params", GOLDEN)
def test_legacy_layout_reproduces_original_batched_outputs(reference_dir, ckpt, golden, tasks, n_params):
    model = emenet.load_checkpoint(reference_dir / ckpt, sequence_layout="legacy")
    g = np.load(reference_dir / golden)
    with torch.no_grad():
        logits, _ = model(torch.from_numpy(g["frames"]).view(2, 3, 3, 112, 112))
    for task in tasks:
        np.testing.assert_allclose(logits[task].numpy(), g[f"legacy_batch_logits_{task}"], atol=1e-5)
    # and the correct layout does not: the defect is real
    correct = emenet.load_checkpoint(reference_dir / ckpt)
    with torch.no_grad():
        fixed, _ = correct(torch.from_numpy(g["frames"]).view(2, 3, 3, 112, 112))
    assert not np.allclose(fixed["VA"].numpy(), g["legacy_batch_logits_VA"], atol=1e-4)


@pytest.mark.parametrize("name,shapes", [("emenet_v", "emenet_v_state_dict_shapes.json"),
                                         ("emenet_v_aux", "emenet_v_aux_state_dict_shapes.json")])
def test_registered_model_matches_original_key_layout(reference_dir, name, shapes):
    expected = json.loads((reference_dir / shapes).read_text())
    actual = {k: list(v.shape) for k, v in emenet.create_model(name).state_dict().items()}
    assert actual == expected


def test_parameter_counts_without_reference():
    assert sum(p.numel() for p in emenet.create_model("emenet_v").parameters()) == 1_684_539
    assert sum(p.numel() for p in emenet.create_model("emenet_v_aux").parameters()) == 1_948_611


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="emenet_v_aux"):
        emenet.create_model("emenet_x")


@pytest.mark.parametrize("kind", TEMPORAL_KINDS)
@pytest.mark.parametrize("name", ["emenet_v", "emenet_v_aux"])
def test_forward_backward_every_parameter_gets_gradient(name, kind):
    torch.manual_seed(0)
    model = emenet.create_model(name, temporal_model=kind).train()
    logits, hidden = model(torch.rand(2, 3, 3, 112, 112))
    loss = sum(v.square().mean() for v in logits.values())
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    for task, v in logits.items():
        assert v.shape == (2, 3, emenet.TASKS[task].num_logits)


@pytest.mark.parametrize("kind", TEMPORAL_KINDS)
def test_streaming_equals_whole_sequence(kind):
    torch.manual_seed(0)
    model = emenet.create_model("emenet_v", temporal_model=kind).eval()
    frames = torch.rand(2, 5, 3, 112, 112)
    with torch.no_grad():
        whole, _ = model(frames)
        first, h = model(frames[:, :2])
        rest, _ = model(frames[:, 2:], hidden=h)
    for task in model.tasks:
        np.testing.assert_allclose(torch.cat([first[task], rest[task]], 1).numpy(), whole[task].numpy(), atol=1e-5)


def test_own_checkpoint_roundtrip_keeps_config_and_outputs(tmp_path):
    torch.manual_seed(0)
    model = emenet.create_model("emenet_v_aux", temporal_model="LSTM", hidden_size=64).eval()
    path = emenet.save_checkpoint(tmp_path / "m" / "net_epoch_1_m.pth", model, epoch=1)
    loaded = emenet.load_checkpoint(path)
    assert loaded.config == model.config
    x = torch.rand(1, 2, 3, 112, 112)
    with torch.no_grad():
        a, _ = model(x)
        b, _ = loaded(x)
    for task in model.tasks:
        torch.testing.assert_close(a[task], b[task])
    with pytest.raises(EMENetInputError, match="already exists"):
        emenet.save_checkpoint(path, model, epoch=1)


def test_original_checkpoint_with_other_head_order_is_remapped(tmp_path):
    torch.manual_seed(0)
    model = emenet.create_model("emenet_v").eval()
    sd = model.state_dict()
    # an original model trained with `--tasks AU VA EXPR`: tmodels.0 is AU, 1 VA, 2 EXPR
    order = {1: 0, 2: 1, 0: 2}
    swapped = {}
    for k, v in sd.items():
        if k.startswith("tmodels."):
            i, rest = k.split(".", 2)[1:]
            k = f"tmodels.{order[int(i)]}.{rest}"
        swapped[k] = v
    torch.save({"state_dict": swapped, "epoch": 3}, tmp_path / "orig.pth")
    loaded = emenet.load_checkpoint(tmp_path / "orig.pth")
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_bad_checkpoints_give_one_line_errors(tmp_path):
    with pytest.raises(EMENetInputError, match="not found"):
        emenet.load_checkpoint(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(EMENetInputError, match="junk.pth: not a readable"):
        emenet.load_checkpoint(tmp_path / "junk.pth")
    sd = emenet.create_model("emenet_v").state_dict()
    sd.pop("backbone.conv1.conv.weight")
    torch.save({"state_dict": sd, "epoch": 1}, tmp_path / "partial.pth")
    with pytest.raises(EMENetInputError, match="missing .*backbone.conv1.conv.weight"):
        emenet.load_checkpoint(tmp_path / "partial.pth")


def test_checkpoint_with_pickled_object_is_refused(tmp_path):
    import argparse  # any object outside torch's weights-only allow-list
    torch.save({"state_dict": {}, "epoch": 1, "args": argparse.Namespace(lr=1)}, tmp_path / "evil.pth")
    with pytest.raises(EMENetInputError, match="not a readable"):
        emenet.load_checkpoint(tmp_path / "evil.pth")
