"""Augmentation of training clips on batched tensors, without torchvision.

`mode="per_frame"` (the default) is the original's: colour jitter and flip drawn for every
frame on its own, with PIL's uint8 arithmetic (emenet.data.augment_frames). `mode="per_clip"`
is EMENet's change: every random choice is drawn once per clip and applied to all its frames,
so a clip stays temporally consistent.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# ITU-R BT.601 luma weights, the usual RGB -> grayscale conversion.
_LUMA = (0.299, 0.587, 0.114)


AUGMENT_MODES = ("per_frame", "per_clip")


@dataclass(frozen=True)
class AugmentConfig:
    image_size: int = 112
    mode: str = "per_frame"  # one of AUGMENT_MODES
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hflip_prob: float = 0.5


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(dim=-3)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(-3)


def _factor(n: int, amount: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    f = 1.0 + (torch.rand(n, generator=generator) * 2.0 - 1.0) * amount  # uniform in [1-a, 1+a]
    return f.to(device).view(n, 1, 1, 1, 1)


def resize_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of (B, T, 3, H, W) to (B, T, 3, size, size); no-op at that size."""
    if frames.shape[-2:] == (size, size):
        return frames
    b, t = frames.shape[:2]
    out = F.interpolate(frames.flatten(0, 1), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.view(b, t, *out.shape[1:])


def augment_clips(frames: torch.Tensor, config: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Colour jitter and horizontal flip, per frame or per clip; frames (B, T, 3, H, W) float in [0, 1]."""
    frames = resize_frames(frames, config.image_size)
    if config.mode == "per_frame":
        return _augment_per_frame(frames, config, generator)
    if config.mode != "per_clip":
        raise ValueError(f"augment mode must be one of {list(AUGMENT_MODES)}, got {config.mode!r}")
    b, device = frames.shape[0], frames.device
    if config.brightness > 0:
        frames = frames * _factor(b, config.brightness, generator, device)
    if config.contrast > 0:
        mean = _grayscale(frames).mean(dim=(-3, -2, -1), keepdim=True)  # per frame, as an image-level jitter
        frames = (frames - mean) * _factor(b, config.contrast, generator, device) + mean
    if config.saturation > 0:
        gray = _grayscale(frames)
        frames = (frames - gray) * _factor(b, config.saturation, generator, device) + gray
    frames = frames.clamp(0.0, 1.0)
    if config.hflip_prob > 0:
        flip = (torch.rand(b, generator=generator) < config.hflip_prob).to(device)
        frames = torch.where(flip.view(b, 1, 1, 1, 1), frames.flip(-1), frames)
    return frames


def _augment_per_frame(frames: torch.Tensor, config: AugmentConfig, generator: torch.Generator | None) -> torch.Tensor:
    from emenet.data.augment_frames import flip_frames, jitter_frames
    shape = frames.shape
    x = (frames.flatten(0, 1) * 255.0).round_()  # (B*T, 3, H, W) uint8 values, as the PIL frames were
    x = jitter_frames(x, (config.brightness, config.contrast, config.saturation), generator)
    if config.hflip_prob > 0:
        x = flip_frames(x, config.hflip_prob, generator)
    return x.div_(255.0).view(shape)


def to_float_frames(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (…, 3, H, W) -> float32 in [0, 1] (the model's input range: no mean/std normalisation)."""
    return frames.float().div_(255.0) if frames.dtype == torch.uint8 else frames
