"""Batch norm + PReLU as one autograd step (emenet.models.bn_prelu) against the two modules."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from emenet.models.bn_prelu import batch_norm_prelu, fusable
from emenet.models.mobilefacenet import ConvBlock


def _modules(channels: int, momentum: float | None, slopes: int) -> tuple[nn.BatchNorm2d, nn.PReLU]:
    bn, prelu = nn.BatchNorm2d(channels, momentum=momentum), nn.PReLU(slopes)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-0.5, 0.5)
        prelu.weight.uniform_(-0.3, 0.6)  # negative slopes too: the sign of the batch-norm output matters
    return bn.train(), prelu


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("momentum,slopes", [(0.1, 5), (None, 5), (0.1, 1)])
def test_fused_step_matches_the_modules(channels_last, momentum, slopes):
    torch.manual_seed(0)
    bn, prelu = _modules(5, momentum, slopes)
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
    out.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-6)
    for a, b in ((bn.weight, bn_ref.weight), (bn.bias, bn_ref.bias), (prelu.weight, prelu_ref.weight)):
        assert a.grad.shape == b.grad.shape and b.grad.abs().max() > 1e-3
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-5)
    for name, buffer in bn_ref.named_buffers():
        torch.testing.assert_close(getattr(bn, name), buffer, rtol=0, atol=0, msg=name)


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
