"""Batch norm (training mode) followed by a PReLU as one autograd step that keeps less for backward.

As separate modules, a `ConvBlock` keeps three full-size activations alive until its backward:
the convolution's output (for batch norm's backward), the batch norm's output (for PReLU's
backward) and the PReLU's output (for the next convolution's backward). This function keeps
only the PReLU's output, which the next convolution keeps anyway (the same storage), and the
per-channel statistics, and rebuilds the rest during backward: where every PReLU slope is
positive the PReLU is invertible (the batch norm's output is `out / slope` where `out` is
negative; one PReLU pass with slopes `1 / slope`), and batch norm's backward only needs its
normalised input `(bn(x) - beta) / gamma`, so aten's batch-norm backward runs on the rebuilt
`bn(x)` with mean `beta`, inverse deviation `1 / gamma` and a weight `gamma**2 * invstd` that
make its scale `gamma * invstd` again. A training step then holds about half the activations
of the separate modules (the default teacher step's peak memory, emenet.bench's train rows)
for one elementwise pass per block in backward, as many as storing the convolution's output
and recomputing the batch norm's from it would take.

Where a slope is not positive (then the sign of the PReLU's output does not tell which side
of zero its input was) or a `|gamma|` is small against its `|beta|` (then `bn(x)` has rounded
away the normalised input's low bits: `MIN_GAMMA_OVER_BETA`), the block keeps the
convolution's output instead and recomputes the batch norm's output from it, as before. The
trained EMENet checkpoints have slopes of at least 0.1 and `|gamma| / |beta|` above 25.

The forward runs the same kernels as `prelu(bn(x))` (running statistics updated the same way),
so outputs are identical; gradients equal the modules' up to float rounding, checked in
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


# Below this |gamma| / |beta| the batch norm's output keeps fewer than 20 of the normalised input's 24 bits.
MIN_GAMMA_OVER_BETA = 1.0 / 16


def invertible(gamma: torch.Tensor, beta: torch.Tensor, slope: torch.Tensor) -> bool:
    """Whether the block's input to batch norm's backward can be rebuilt from the PReLU's output:
    every slope positive, every |gamma| nonzero and at least `MIN_GAMMA_OVER_BETA` of its |beta|."""
    g = gamma.detach().abs()
    return bool((slope.detach() > 0).all() and (g > 0).all() and (g >= beta.detach().abs() * MIN_GAMMA_OVER_BETA).all())


class _BatchNormPReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, slope: torch.Tensor,
                running_mean: torch.Tensor | None, running_var: torch.Tensor | None, momentum: float,
                eps: float) -> torch.Tensor:
        normed, mean, invstd = torch.ops.aten.native_batch_norm(x, gamma, beta, running_mean, running_var, True,
                                                                momentum, eps)
        out = torch.ops.aten._prelu_kernel(normed, slope.reshape(_CHANNEL))
        ctx.from_output = invertible(gamma, beta, slope)
        ctx.save_for_backward(out if ctx.from_output else x, gamma, beta, slope, mean, invstd)
        ctx.eps = eps
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        kept, gamma, beta, slope, mean, invstd = ctx.saved_tensors
        slope_c = slope.reshape(_CHANNEL)
        bn_grads = list(ctx.needs_input_grad[:3])
        if ctx.from_output:  # `kept` is the PReLU's output; slopes > 0, so its sign is its input's
            grad_normed, grad_slope = torch.ops.aten._prelu_kernel_backward(grad, kept, slope_c)
            grad_slope = grad_slope.sum((0, 2, 3)) / slope  # out * grad -> bn(x) * grad where bn(x) < 0
            normed = torch.ops.aten._prelu_kernel(kept, slope_c.reciprocal())  # bn(x) again
            # (bn(x) - beta) / gamma is the normalised input; the weight makes the scale gamma * invstd
            grad_x, grad_gamma, grad_beta = torch.ops.aten.native_batch_norm_backward(
                grad_normed, normed, gamma * gamma * invstd, None, None, beta, gamma.reciprocal(), True, ctx.eps,
                bn_grads)
        else:  # `kept` is the convolution's output
            scale = gamma * invstd
            normed = torch.addcmul((beta - mean * scale).reshape(_CHANNEL), kept, scale.reshape(_CHANNEL))  # bn(x)
            grad_normed, grad_slope = torch.ops.aten._prelu_kernel_backward(grad, normed, slope_c)
            del normed
            grad_slope = grad_slope.sum((0, 2, 3))
            grad_x, grad_gamma, grad_beta = torch.ops.aten.native_batch_norm_backward(
                grad_normed, kept, gamma, None, None, mean, invstd, True, ctx.eps, bn_grads)
        grad_slope = grad_slope.sum_to_size(slope.shape)  # (C,) -> the slope's shape
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
