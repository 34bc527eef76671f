"""Clip-level augmentation on batched tensors, without torchvision.

Every random choice is drawn once per clip and applied to all its frames, so a clip stays
temporally consistent (the original jittered and flipped each frame independently).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

# ITU-R BT.601 luma weights, the usual RGB -> grayscale conversion.
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class AugmentConfig:
    image_size: int = 112
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
    """Colour jitter and horizontal flip drawn per clip; frames (B, T, 3, H, W) float in [0, 1]."""
    frames = resize_frames(frames, config.image_size)
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


def to_float_frames(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (…, 3, H, W) -> float32 in [0, 1] (the model's input range: no mean/std normalisation)."""
    return frames.float().div_(255.0) if frames.dtype == torch.uint8 else frames
