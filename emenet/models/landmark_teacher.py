"""The face-alignment MobileFaceNet (68 landmarks) the original started from and distilled into FA.

Its checkpoint (`mobilefacenet_model_best.pth.tar`) holds the backbone keys without the
`backbone.` prefix plus the GDC head `output_layer.linear` (136, 512) and `output_layer.bn`.
"""
from __future__ import annotations

import os

import torch

from emenet.models.checkpoint import read_checkpoint_file
from emenet.models.strict_load import load_state_dict_strict
from emenet.models.emenet import EMENet
from emenet.models.mobilefacenet import MobileFaceNet

LANDMARK_OUTPUTS = 136
_HEAD_ONLY = ("output_layer.linear.", "output_layer.bn.")


def load_landmark_network(path: str | os.PathLike, device: str | torch.device = "cpu") -> MobileFaceNet:
    """The whole 136-output network, frozen in eval mode (the FA teacher)."""
    ckpt = read_checkpoint_file(path, allow_bare_state_dict=True)
    state_dict = {k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()}
    net = MobileFaceNet(landmark_outputs=LANDMARK_OUTPUTS)
    load_state_dict_strict(net, state_dict, str(path))
    net.requires_grad_(False)
    return net.to(device).eval()


def init_backbone_from_landmark_network(model: EMENet, path: str | os.PathLike) -> None:
    """Initialise `model.backbone` as the original did: strict load, then drop the GDC linear and bn."""
    net = load_landmark_network(path)
    kept = {k: v for k, v in net.state_dict().items() if not k.startswith(_HEAD_ONLY)}
    load_state_dict_strict(model.backbone, kept, str(path))
