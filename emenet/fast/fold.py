"""Inference copies of the MobileFaceNet backbone: batch norm folded into the convolutions.

In eval mode a BatchNorm2d after a bias-free convolution is an affine map per output channel,
so it can be folded into the convolution's weight and bias (`torch.nn.utils.fusion.fuse_conv_bn_eval`):
one op and one memory pass less per block. The copy is channels-last, the layout oneDNN's
CPU kernels and cuDNN's tensor-core kernels prefer, so no reorder runs between layers.

    >>> from emenet.models.mobilefacenet import MobileFaceNet
    >>> net = MobileFaceNet().eval()
    >>> fused = fold_batch_norm(net)
    >>> x = torch.rand(2, 3, 112, 112)
    >>> bool(torch.allclose(fused(x), net(x), atol=1e-5))
    True
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def fold_batch_norm(module: nn.Module) -> nn.Module:
    """An eval-mode copy of `module` whose every (conv, bn) pair is one convolution.

    Folds the `conv`/`bn` attribute pairs of MobileFaceNet's ConvBlock and LinearBlock; the
    original module is left untouched.
    """
    folded = copy.deepcopy(module).eval()
    for block in folded.modules():
        conv, bn = getattr(block, "conv", None), getattr(block, "bn", None)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
            block.conv = fuse_conv_bn_eval(conv, bn)
            block.bn = nn.Identity()
    for p in folded.parameters():
        p.requires_grad_(False)
    return folded


def fused_backbone(backbone: nn.Module, device: torch.device, channels_last: bool = True) -> nn.Module:
    """`fold_batch_norm` on `device`, channels-last unless asked otherwise."""
    folded = fold_batch_norm(backbone).to(device)
    return folded.to(memory_format=torch.channels_last) if channels_last else folded
