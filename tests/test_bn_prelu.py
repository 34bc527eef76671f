"""Batch norm + PReLU as one autograd step (emenet.models.bn_prelu) against the two modules."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from emenet.models.bn_prelu import MIN_GAMMA_OVER_BETA, batch_norm_prelu, fusable, invertible
from emenet.models.mobilefacenet import ConvBlock


# PReLU slopes: all positive (backward rebuilds bn(x) from the output), or some negative (it keeps x)
SLOPES = {"positive": (0.05, 0.6), "mixed": (-0.3, 0.6)}


def _modules(channels: int, momentum: float | None, slopes: int, slope_range: tuple[float, float] = SLOPES["mixed"]
             ) -> tuple[nn.BatchNorm2d, nn.PReLU]:
    bn, prelu = nn.BatchNorm2d(channels, momentum=momentum), nn.PReLU(slopes)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.weight[::2].neg_()  # negative scales are invertible too
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-0.5, 0.5)
        prelu.weight.uniform_(*slope_range)
        prelu.weight[0] = max(slope_range[0], 0.01) if slope_range[0] > 0 else slope_range[0]  # the range's sign
    return bn.train(), prelu


def _saved_storages(out: torch.Tensor) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in out.grad_fn.saved_tensors if t.dim() == 4}


@pytest.mark.parametrize("slope_range", ["positive", "mixed"])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("momentum,slopes", [(0.1, 5), (None, 5), (0.1, 1)])
def test_fused_step_matches_the_modules(channels_last, momentum, slopes, slope_range):
    torch.manual_seed(0)
    bn, prelu = _modules(5, momentum, slopes, SLOPES[slope_range])
    bn_ref, prelu_ref = copy.deepcopy(bn), copy.deepcopy(prelu)
    x = torch.randn(3, 5, 6, 7) * 2 + 0.3
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x_ref = x.clone().requires_grad_()
    x = x.clone().requires_grad_()
    grad = torch.randn(3, 5, 6, 7)
    for _ in range(2):  # twice: the cumulative average (momentum None) depends on the batch count
        out = batch_norm_prelu(x, bn, prelu)
        ref = prelu_ref(bn_ref(x_ref))
    assert fusable(x, bn, prelu)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)  # the same kernels in the forward
    from_output = slope_range == "positive"
    assert invertible(bn.weight, bn.bias, prelu.weight) == from_output
    # what backward keeps: the output's storage (shared with the next layer) or the input's
    assert _saved_storages(out) == {(out if from_output else x).untyped_storage().data_ptr()}
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-6)
    for a, b in ((bn.weight, bn_ref.weight), (bn.bias, bn_ref.bias), (prelu.weight, prelu_ref.weight)):
        assert a.grad.shape == b.grad.shape and b.grad.abs().max() > 1e-3
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-5)
    for name, buffer in bn_ref.named_buffers():
        torch.testing.assert_close(getattr(bn, name), buffer, rtol=0, atol=0, msg=name)


def test_invertible_needs_positive_slopes_and_gamma_not_small_against_beta():
    gamma, beta, slope = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.5]), torch.tensor([0.25, 1e-3])
    assert invertible(gamma, beta, slope)
    assert not invertible(gamma, beta, torch.tensor([0.25, 0.0]))
    assert not invertible(gamma, beta, torch.tensor([0.25, -0.1]))
    assert not invertible(torch.tensor([1.0, 0.0]), torch.tensor([3.0, 0.0]), slope)
    small = 3.0 * MIN_GAMMA_OVER_BETA
    assert invertible(torch.tensor([small, 1.0]), beta, slope)
    assert not invertible(torch.tensor([small * 0.99, 1.0]), beta, slope)


def test_rebuilt_gradients_with_beta_large_against_gamma():
    """bn(x) - beta loses the normalised input's low bits when |beta| >> |gamma|: at the largest
    ratio allowed the gradients are still as close to a float64 reference as the modules' are."""
    torch.manual_seed(1)
    bn, prelu = nn.BatchNorm2d(3).train(), nn.PReLU(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 0.5, -0.25]))
        bn.bias.copy_(bn.weight.abs() / MIN_GAMMA_OVER_BETA * torch.tensor([1.0, -1.0, 1.0]))
        prelu.weight.copy_(torch.tensor([0.1, 0.25, 0.02]))
    x = torch.randn(4, 3, 5, 5) * 2 + 0.3
    grad = torch.randn(4, 3, 5, 5)

    def grads(fn, bn: nn.BatchNorm2d, prelu: nn.PReLU, dtype: torch.dtype) -> list[torch.Tensor]:
        bn, prelu = copy.deepcopy(bn).to(dtype), copy.deepcopy(prelu).to(dtype)
        x_ = x.to(dtype, copy=True).requires_grad_()
        fn(x_, bn, prelu).backward(grad.to(dtype))
        return [t.grad.double() for t in (x_, bn.weight, bn.bias, prelu.weight)]

    assert invertible(bn.weight, bn.bias, prelu.weight)
    exact = grads(lambda x_, b, p: p(b(x_)), bn, prelu, torch.float64)
    modules = grads(lambda x_, b, p: p(b(x_)), bn, prelu, torch.float32)
    fused = grads(batch_norm_prelu, bn, prelu, torch.float32)
    for name, e, m, f in zip(("x", "gamma", "beta", "slope"), exact, modules, fused):
        scale = float(e.abs().max())
        modules_error, fused_error = float((m - e).abs().max()), float((f - e).abs().max())
        assert fused_error <= max(16 * modules_error, 1e-6 * scale), (name, fused_error, modules_error)
        torch.testing.assert_close(f, e, rtol=1e-4, atol=1e-5 * scale)


def test_conv_block_uses_the_fused_step_only_when_training_with_gradients():
    torch.manual_seed(0)
    block = ConvBlock(3, 4, kernel=3, padding=1)
    block.lean_activations = True
    x = torch.randn(2, 3, 5, 5)
    assert block(x).grad_fn.name().endswith("_BatchNormPReLUBackward")
    with torch.no_grad():
        assert block(x).grad_fn is None
    assert not fusable(x, block.eval().bn, block.prelu)
    block.lean_activations = False
    assert "_BatchNormPReLU" not in block.train()(x).grad_fn.name()


def test_docstring_example_runs():
    import doctest

    from emenet.models import bn_prelu
    assert doctest.testmod(bn_prelu).failed == 0


def _saved_bytes(model: nn.Module, frames: torch.Tensor) -> int:
    """Bytes of the distinct activation storages (not the weights) autograd keeps for backward over
    one forward of `model`."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.untyped_storage().data_ptr() not in weights:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(frames)
    return sum(storages.values())


def test_lean_blocks_of_the_real_model_keep_four_tenths_of_the_activations():
    """EMENet-V as built (PReLU slopes 0.25, batch norm gamma 1, beta 0) rebuilds every block from
    its output: 15 instead of 37 MB per frame (the teacher step's peak memory)."""
    import emenet
    torch.manual_seed(0)
    model = emenet.create_model("emenet_v").train()
    frames = torch.rand(1, 2, 3, 112, 112)
    plain = _saved_bytes(model, frames)
    for block in model.modules():
        if isinstance(block, ConvBlock):
            block.lean_activations = True
    lean = _saved_bytes(model, frames)
    assert 0.35 * plain < lean < 0.45 * plain, (lean, plain)
