"""PReLU rewritten as two depthwise 1x1 convolutions, for ONNX Runtime's blocked CPU layout.

ONNX Runtime runs convolutions on x86 in a blocked channel layout (NCHWc) but has no blocked
PReLU, so every one of MobileFaceNet's 33 per-channel PReLUs cost a reorder out of the
blocked layout and one back in: a profile of the exported backbone put 31% of the time in
PRelu and 27% in the reorders. The same function written with convolutions stays blocked:

    PReLU(y) = y + (1 - a) * relu(-y)

`relu(-y)` is a depthwise 1x1 convolution with weight -1 and a fused ReLU, the scale by
`1 - a` a second one whose sum with `y` ONNX Runtime fuses into it. The result is equal to
PReLU up to float rounding (checked in tests/test_backends.py). In eager PyTorch the rewrite
is slower (oneDNN's PReLU is cheap there), so only the ONNX export uses it.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F


class DepthwisePReLU(nn.Module):
    """A per-channel `nn.PReLU` over (N, C, H, W) inputs, as two depthwise 1x1 convolutions."""

    def __init__(self, prelu: nn.PReLU):
        super().__init__()
        slope = prelu.weight.detach().float().reshape(-1)
        channels = slope.numel()
        self.negate = nn.Conv2d(channels, channels, 1, groups=channels, bias=False)
        self.scale = nn.Conv2d(channels, channels, 1, groups=channels, bias=False)
        with torch.no_grad():
            self.negate.weight.fill_(-1.0)
            self.scale.weight.copy_((1.0 - slope).reshape(channels, 1, 1, 1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y + self.scale(F.relu(self.negate(y)))


def prelu_as_convolutions(module: nn.Module) -> nn.Module:
    """A copy of `module` with every per-channel `nn.PReLU` replaced by a `DepthwisePReLU`.

    Single-slope PReLUs are left as they are (their channel count is not known here).
    """
    out = copy.deepcopy(module)
    _replace(out)
    return out


def _replace(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.PReLU) and child.weight.numel() > 1:
            setattr(module, name, DepthwisePReLU(child))
        else:
            _replace(child)
