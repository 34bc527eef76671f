"""Batch norm (training mode) followed by a PReLU as one autograd step that keeps less for backward.

As separate modules, a `ConvBlock` keeps three full-size activations alive until its backward:
the convolution's output (for batch norm's backward), the batch norm's output (for PReLU's
backward) and the PReLU's output (for the next convolution's backward). The batch norm's
output is one multiply-add of the convolution's output with per-channel constants, so this
function keeps only the convolution's output and the per-channel statistics and recomputes
the batch norm's output during backward. A training step then holds about a third fewer
activations (the teacher step's peak memory, benchmarks/teacher_step_memory.py) for one
extra elementwise pass per block in backward.

The forward runs the same kernels as `prelu(bn(x))` (running statistics updated the same way),
so outputs are identical; gradients equal the modules' up to float rounding (the recomputed
batch-norm output may differ from the stored one in the last bit), checked in
tests/test_bn_prelu.py.

    >>> bn, prelu = nn.BatchNorm2d(4), nn.PReLU(4)
    >>> x = torch.randn(2, 4, 3, 3, requires_grad=True)
    >>> batch_norm_prelu(x, bn, prelu).shape
    torch.Size([2, 4, 3, 3])
"""
from __future__ import annotations

import torch
from torch import nn

_CHANNEL = (1, -1, 1, 1)  # per-channel constants broadcast over (N, C, H, W)


class _BatchNormPReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, slope: torch.Tensor,
                running_mean: torch.Tensor | None, running_var: torch.Tensor | None, momentum: float,
                eps: float) -> torch.Tensor:
        normed, mean, invstd = torch.ops.aten.native_batch_norm(x, gamma, beta, running_mean, running_var, True,
                                                                momentum, eps)
        out = torch.ops.aten._prelu_kernel(normed, slope.reshape(_CHANNEL))
        ctx.save_for_backward(x, gamma, beta, slope, mean, invstd)
        ctx.eps = eps
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, gamma, beta, slope, mean, invstd = ctx.saved_tensors
        scale = gamma * invstd
        normed = torch.addcmul((beta - mean * scale).reshape(_CHANNEL), x, scale.reshape(_CHANNEL))  # bn(x) again
        grad_normed, grad_slope = torch.ops.aten._prelu_kernel_backward(grad, normed, slope.reshape(_CHANNEL))
        del normed
        grad_slope = grad_slope.sum((0, 2, 3)).sum_to_size(slope.shape)  # (N, C, H, W) -> the slope's shape
        grad_x, grad_gamma, grad_beta = torch.ops.aten.native_batch_norm_backward(
            grad_normed, x, gamma, None, None, mean, invstd, True, ctx.eps, list(ctx.needs_input_grad[:3]))
        return grad_x, grad_gamma, grad_beta, grad_slope, None, None, None, None


def fusable(x: torch.Tensor, bn: nn.BatchNorm2d, prelu: nn.PReLU) -> bool:
    """Whether `batch_norm_prelu` can stand in for `prelu(bn(x))`: fp32 input, an affine batch
    norm in training mode, a 4-d input."""
    return (bn.training and bn.affine and x.dim() == 4 and x.dtype == torch.float32
            and bn.weight.dtype == torch.float32 and prelu.weight.dtype == torch.float32)


def batch_norm_prelu(x: torch.Tensor, bn: nn.BatchNorm2d, prelu: nn.PReLU) -> torch.Tensor:
    """`prelu(bn(x))` for a batch norm in training mode (see `fusable`), keeping only `x` for backward."""
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # a cumulative moving average, as nn.BatchNorm2d does
            momentum = 1.0 / float(bn.num_batches_tracked)
    tracked = bn.track_running_stats  # untracked: statistics of the batch only, no buffers updated
    return _BatchNormPReLU.apply(x, bn.weight, bn.bias, prelu.weight, bn.running_mean if tracked else None,
                                 bn.running_var if tracked else None, momentum, bn.eps)
