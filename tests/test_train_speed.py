"""Training-step speed settings (emenet.fast.training): the fast step learns what the plain one does."""
from __future__ import annotations

import copy
import logging

import pytest
import torch

import emenet
from emenet.data.augment import AugmentConfig
from emenet.errors import EMENetInputError
from emenet.fast.training import COMPILE_MESSAGE, CompiledForward, TrainSpeed, channels_last_clips
from emenet.models.mobilefacenet import ConvBlock
from emenet.training.config import TrainConfig
from emenet.training.trainer import Trainer
from model_helpers import teacher_batch, teacher_trainer


def _batch(seed: int = 0) -> dict:
    return teacher_batch(clips=1, steps=3, seed=seed)


def _trainer(model: emenet.EMENet, speed: TrainSpeed) -> Trainer:
    return teacher_trainer(model, AugmentConfig(), batch_size=1, speed=speed)


def test_fast_step_gives_the_plain_steps_losses_and_update():
    torch.manual_seed(0)
    model = emenet.create_model("emenet_v").train()
    fast_speed = TrainSpeed(channels_last=True, lean_activations=True)  # "fast" without the process-wide allocator
    plain, fast = _trainer(copy.deepcopy(model), TrainSpeed()), _trainer(copy.deepcopy(model), fast_speed)
    torch.manual_seed(1)  # dropout masks: the same draws for both steps
    losses_plain = plain.train_step(_batch(), torch.Generator().manual_seed(2))
    torch.manual_seed(1)
    losses_fast = fast.train_step(_batch(), torch.Generator().manual_seed(2))
    assert set(losses_plain) == set(losses_fast) and losses_plain["loss"] > 0
    for k in losses_plain:
        assert losses_fast[k] == pytest.approx(losses_plain[k], rel=1e-4, abs=1e-5), k
    # The same update up to float rounding (sums in another order, which also depends on the
    # thread count): per parameter within 5% of its update (plus a floor for biases whose true
    # gradient is ~0, e.g. before another batch norm), and the whole update within 1%. A wrong
    # layout or a missed setting moves the update by its own size, not by percent.
    plain_updates, fast_updates = [], []
    for (name, a), b, start in zip(plain.model.named_parameters(), fast.model.parameters(), model.parameters()):
        update_plain, update_fast = (a - start).detach().flatten(), (b - start).detach().flatten()
        assert (update_fast - update_plain).norm() <= 5e-2 * update_plain.norm() + 1e-6, name
        plain_updates.append(update_plain)
        fast_updates.append(update_fast)
    plain_all, fast_all = torch.cat(plain_updates), torch.cat(fast_updates)
    assert plain_all.norm() > 1e-2  # the step did move the weights, so the comparison means something
    assert (fast_all - plain_all).norm() <= 1e-2 * plain_all.norm()
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
               for p in fast.model.parameters())
    blocks = [m for m in fast.model.modules() if isinstance(m, ConvBlock)]
    assert blocks and all(b.lean_activations for b in blocks)
    assert not any(m.lean_activations for m in plain.model.modules() if isinstance(m, ConvBlock))
    for name, buffer in plain.model.named_buffers():  # batch-norm statistics updated once, the same way
        torch.testing.assert_close(dict(fast.model.named_buffers())[name], buffer, rtol=1e-4, atol=1e-5, msg=name)


def test_channels_last_clips_keep_values_and_make_a_channels_last_batch():
    clips = torch.rand(2, 3, 3, 5, 4)
    out = channels_last_clips(clips)
    assert torch.equal(out, clips)
    assert out.flatten(0, 1).is_contiguous(memory_format=torch.channels_last)


def test_training_options_choose_the_speed():
    assert TrainSpeed.from_options("plain", "cpu") == TrainSpeed()
    assert TrainSpeed.from_options("fast", "cpu") == TrainSpeed(channels_last=True, retain_freed_memory=True,
                                                                lean_activations=True)
    assert TrainSpeed.from_options("fast", "cuda", bf16=True) == TrainSpeed(channels_last=True, bf16=True)
    assert TrainSpeed.from_options("plain", "cpu", compile=True) == TrainSpeed(compile=True)
    assert TrainSpeed.from_options("fast", "cpu", compile=True) == TrainSpeed(  # the compiler plans what backward keeps
        channels_last=True, compile=True, retain_freed_memory=True)
    assert not TrainSpeed.recommended("cpu").compile  # first use costs about a minute: on request only
    assert TrainConfig().train_speed == "fast"
    with pytest.raises(EMENetInputError, match="--train_speed must be one of"):
        TrainConfig(train_speed="turbo")


class _CountingBackend:
    """A torch.compile backend that counts the graphs it is given and hands them to `compile_graph`."""

    def __init__(self, compile_graph):
        self.compile_graph, self.graphs = compile_graph, 0

    def __call__(self, graph, example_inputs):
        self.graphs += 1
        return self.compile_graph(graph, example_inputs)


def _tiny_stack() -> torch.nn.Module:
    """The backbone's real blocks (conv + BN + PReLU, an inverted residual) at a tiny size."""
    from emenet.models.mobilefacenet import DepthWise
    torch.manual_seed(0)
    return torch.nn.Sequential(ConvBlock(3, 8, 3, 2, 1), DepthWise(8, 8, 16, residual=True), ConvBlock(8, 4)).train()


def test_compiled_blocks_give_the_eager_outputs_and_gradients_and_compile_once(caplog):
    from torch._inductor.compile_fx import compile_fx
    eager, model = _tiny_stack(), _tiny_stack()
    backend = _CountingBackend(compile_fx)  # inductor, as `compile=True` uses it, C++ kernels included
    forward = CompiledForward(model, backend=backend)
    with caplog.at_level(logging.INFO, logger="emenet.fast.training"):
        for clips in (2, 3):  # a shorter or longer batch reuses the graph (batch dimension dynamic)
            x = torch.randn(clips, 3, 16, 16)
            out, ref = forward(x), eager(x)
            torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
            (out * torch.arange(out.numel()).reshape(out.shape)).sum().backward()
            (ref * torch.arange(ref.numel()).reshape(ref.shape)).sum().backward()
    assert backend.graphs == 1 and forward.failed is None
    assert caplog.text.count(COMPILE_MESSAGE) == 1
    # sums in another order: within float rounding of the largest gradient (some true gradients
    # are ~0, e.g. a batch norm's before another batch norm), far below any real difference
    scale = max(float(p.grad.abs().max()) for p in eager.parameters())
    for (name, a), b in zip(model.named_parameters(), eager.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6 * scale, msg=name)
    for (name, a), b in zip(model.named_buffers(), eager.buffers()):  # running statistics updated once per call
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_trainer_step_through_the_compiler_gives_the_eager_losses_with_one_graph():
    torch.manual_seed(0)
    model = emenet.create_model("emenet_v").train()
    # the real heads, losses and step; a small backbone of the real blocks keeps tracing and steps fast
    model.backbone = torch.nn.Sequential(ConvBlock(3, 8, 3, 8, 1), ConvBlock(8, 512, 14, groups=8), torch.nn.Flatten())
    eager, compiled = _trainer(copy.deepcopy(model), TrainSpeed()), _trainer(copy.deepcopy(model), TrainSpeed())
    backend = _CountingBackend(lambda graph, example_inputs: graph.forward)  # dynamo's graph, run as is: fast
    compiled._forward = CompiledForward(compiled.model, backend=backend)
    for clips in (2, 3):  # every task's batch and the next step's larger one share one graph
        batch = teacher_batch(clips=clips, steps=2, seed=clips)
        torch.manual_seed(1)
        losses_eager = eager.train_step(batch, torch.Generator().manual_seed(2))
        torch.manual_seed(1)
        losses_compiled = compiled.train_step(batch, torch.Generator().manual_seed(2))
        assert set(losses_eager) == set(losses_compiled)
        for k in losses_eager:
            assert losses_compiled[k] == pytest.approx(losses_eager[k], rel=1e-5, abs=1e-6), k
    assert backend.graphs == 1


def _failing_backend(graph, example_inputs):
    raise RuntimeError("no working C++ compiler\nsecond line")


def test_compile_failure_or_missing_compiler_falls_back_to_eager_with_one_warning(caplog, monkeypatch):
    model = _tiny_stack().eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ref = model(x)
    forward = CompiledForward(model, backend=_failing_backend)
    with caplog.at_level(logging.INFO, logger="emenet.fast.training"), torch.no_grad():
        torch.testing.assert_close(forward(x), ref, rtol=0, atol=0)
        torch.testing.assert_close(forward(x), ref, rtol=0, atol=0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "RuntimeError: no working C++ compiler" in warnings[0].getMessage()
    assert "second line" not in caplog.text and forward.compiled is None
    caplog.clear()
    import emenet.fast.runners
    monkeypatch.setattr(emenet.fast.runners, "compiler_available", lambda: "no C++ compiler here")
    with caplog.at_level(logging.INFO, logger="emenet.fast.training"), torch.no_grad():
        torch.testing.assert_close(TrainSpeed(compile=True).prepare(model)(x), ref, rtol=0, atol=0)
    assert "training without torch.compile: no C++ compiler here" in caplog.text
    assert COMPILE_MESSAGE not in caplog.text
