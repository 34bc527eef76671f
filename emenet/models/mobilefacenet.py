"""MobileFaceNet backbone with the module names of the released EMENet checkpoints.

The layer names and widths follow the face-alignment MobileFaceNet that every original
EMENet model was initialised from (68 landmarks); EMENet keeps only the 7x7 depthwise
`output_layer.conv_6_dw` of its GDC head, which turns the (512, 7, 7) map into a 512-d
feature per 112x112 frame.
"""
from __future__ import annotations

import torch
from torch import nn

from emenet.models.bn_prelu import batch_norm_prelu, fusable

FEATURE_DIM = 512
INPUT_SIZE = 112


class ConvBlock(nn.Module):
    """Conv -> BN -> PReLU (`Conv_block` in the original)."""

    # Set by training (`TrainSpeed.lean_activations`): batch norm + PReLU as one autograd step that
    # keeps only the PReLU's output for backward (emenet.models.bn_prelu); not saved.
    lean_activations: bool = False

    def __init__(self, in_c: int, out_c: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)
        self.prelu = nn.PReLU(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.lean_activations and torch.is_grad_enabled() and fusable(out, self.bn, self.prelu):
            return batch_norm_prelu(out, self.bn, self.prelu)
        return self.prelu(self.bn(out))


class LinearBlock(nn.Module):
    """Conv -> BN without activation (`Linear_block` in the original)."""

    def __init__(self, in_c: int, out_c: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_c, out_c, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class DepthWise(nn.Module):
    """Inverted-residual block: 1x1 expand, 3x3 depthwise, 1x1 linear projection."""

    def __init__(self, in_c: int, out_c: int, hidden: int, stride: int = 1, residual: bool = False):
        super().__init__()
        self.conv = ConvBlock(in_c, hidden)
        self.conv_dw = ConvBlock(hidden, hidden, kernel=3, stride=stride, padding=1, groups=hidden)
        self.project = LinearBlock(hidden, out_c)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.conv_dw(self.conv(x)))
        return x + out if self.residual else out


class Residual(nn.Module):
    """A stack of `num_block` residual DepthWise blocks at constant width."""

    def __init__(self, channels: int, num_block: int, hidden: int):
        super().__init__()
        self.model = nn.Sequential(*[DepthWise(channels, channels, hidden, residual=True) for _ in range(num_block)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class GDCFeature(nn.Module):
    """The part of the GDC head EMENet keeps: a 7x7 depthwise conv + BN, flattened to 512."""

    def __init__(self, channels: int = FEATURE_DIM):
        super().__init__()
        self.conv_6_dw = LinearBlock(channels, channels, kernel=7, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_6_dw(x).flatten(1)


class GDCLandmarks(GDCFeature):
    """The full GDC head of the 68-landmark face-alignment network (136 outputs)."""

    def __init__(self, num_outputs: int = 136, channels: int = FEATURE_DIM):
        super().__init__(channels)
        self.linear = nn.Linear(channels, num_outputs, bias=False)
        self.bn = nn.BatchNorm1d(num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.linear(super().forward(x)))


class MobileFaceNet(nn.Module):
    """MobileFaceNet trunk; `output_layer` decides between the 512-d feature and landmarks.

    >>> net = MobileFaceNet()
    >>> net(torch.zeros(2, 3, 112, 112)).shape
    torch.Size([2, 512])
    """

    def __init__(self, landmark_outputs: int | None = None):
        super().__init__()
        self.conv1 = ConvBlock(3, 64, kernel=3, stride=2, padding=1)
        self.conv2_dw = ConvBlock(64, 64, kernel=3, padding=1, groups=64)
        self.conv_23 = DepthWise(64, 64, hidden=128, stride=2)
        self.conv_3 = Residual(64, num_block=4, hidden=128)
        self.conv_34 = DepthWise(64, 128, hidden=256, stride=2)
        self.conv_4 = Residual(128, num_block=6, hidden=256)
        self.conv_45 = DepthWise(128, 128, hidden=512, stride=2)
        self.conv_5 = Residual(128, num_block=2, hidden=256)
        self.conv_6_sep = ConvBlock(128, FEATURE_DIM)
        self.output_layer = GDCFeature() if landmark_outputs is None else GDCLandmarks(landmark_outputs)

    # Set by training (`--activation_checkpointing`): recompute activations in backward; not saved.
    checkpoint_activations: bool = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (N, 3, 112, 112) RGB in [0, 1]
        if self.checkpoint_activations and self.training and torch.is_grad_enabled():
            from emenet.models.activation_checkpoint import run_checkpointed
            stages = [self.conv1, self.conv2_dw, self.conv_23, self.conv_3, self.conv_34, self.conv_4,
                      self.conv_45, self.conv_5, self.conv_6_sep]
            return self.output_layer(run_checkpointed(stages, x))
        out = self.conv1(x)
        out = self.conv2_dw(out)
        out = self.conv_23(out)
        out = self.conv_3(out)
        out = self.conv_34(out)
        out = self.conv_4(out)
        out = self.conv_45(out)
        out = self.conv_5(out)
        out = self.conv_6_sep(out)  # (N, 512, 7, 7)
        return self.output_layer(out)  # (N, 512) or (N, landmarks)
