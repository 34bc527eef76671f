"""The original's weight initialisation, for models trained from scratch.

The original's MobileFaceNet initialised every convolution (and linear layer) with Kaiming
normal in fan-out mode for ReLU, biases 0, batch norms weight 1 and bias 0; its visual-audio
tree's temporal heads drew their decoders uniformly in [-0.1, 0.1] (the visual tree left
PyTorch's default there). `--init torch` keeps PyTorch's defaults everywhere.
"""
from __future__ import annotations

from torch import nn

DECODER_INIT_RANGE = 0.1  # the original visual-audio RNNModel.init_weights' `initrange`


def kaiming_fan_out_(module: nn.Module) -> None:
    """The original MobileFaceNet's `_initialize_weights`, applied to every submodule of `module`."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def initialise_like_original(model: nn.Module, audiovisual: bool) -> None:
    """Kaiming fan-out for the frame encoder; uniform decoders for the visual-audio model's heads."""
    kaiming_fan_out_(model.backbone)
    if audiovisual:
        for head in model.tmodels:
            nn.init.uniform_(head.decoder.weight, -DECODER_INIT_RANGE, DECODER_INIT_RANGE)
