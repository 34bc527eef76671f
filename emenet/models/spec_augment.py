"""Spectrogram augmentation of the audio branch, as NeMo's MarbleNet applied it in training.

The original's audio branch was NeMo's classification model (`vad_marblenet`) used in training
mode, so every MFCC it computed went through the model's `spec_augment` module. Its
configuration (MarbleNet 3x2x64, the reference's `nemo_marblenet_3x2x64_state_dict.json`):
`rect_masks` 5 cut-out rectangles of up to `rect_freq` 15 coefficients by `rect_time` 25 frames,
then `freq_masks` 2 bands of up to `freq_width` 15 coefficients and `time_masks` 2 spans of up to
`time_width` 25 frames, all set to 0. Each mask's start and size are drawn uniformly (integers,
ends included) as NeMo draws them: a cut-out starts in [0, F - rect_freq] x [0, T - rect_time],
a band in [0, F - freq_width], a span in [0, max(1, valid length - time_width)].
We draw every mask of a batch at once from torch's global generator (saved with checkpoints,
so resumed runs continue exactly) and apply them as one boolean mask.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SpecAugmentConfig:
    freq_masks: int = 2
    time_masks: int = 2
    freq_width: int = 15
    time_width: int = 25
    rect_masks: int = 5
    rect_time: int = 25
    rect_freq: int = 15


def _randint(low: torch.Tensor | int, high: torch.Tensor | int, shape: tuple[int, ...], device: torch.device
             ) -> torch.Tensor:
    """Uniform integers in [low, high], ends included (Python's random.randint), per element."""
    low = torch.as_tensor(low, device=device).expand(shape)
    high = torch.as_tensor(high, device=device).expand(shape)
    return low + (torch.rand(shape, device=device) * (high - low + 1)).floor().long()


def _spans(index: torch.Tensor, start: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
    """(N, K, L): whether position `index` (L,) lies in [start, start + width) of each (N, K) span."""
    return (index >= start[..., None]) & (index < (start + width)[..., None])


def spec_augment_mask(n: int, num_freq: int, num_time: int, lengths: torch.Tensor, config: SpecAugmentConfig,
                      device: torch.device) -> torch.Tensor:
    """(N, F, T) True where an MFCC value is masked."""
    f, t = torch.arange(num_freq, device=device), torch.arange(num_time, device=device)
    mask = torch.zeros(n, num_freq, num_time, dtype=torch.bool, device=device)
    if config.rect_masks:
        shape = (n, config.rect_masks)
        fx = _randint(0, num_freq - config.rect_freq, shape, device)
        ty = _randint(0, num_time - config.rect_time, shape, device)
        wf, wt = _randint(0, config.rect_freq, shape, device), _randint(0, config.rect_time, shape, device)
        rect = _spans(f, fx, wf)[..., :, None] & _spans(t, ty, wt)[..., None, :]  # (N, R, F, T)
        mask |= rect.any(dim=1)
    if config.freq_masks:
        shape = (n, config.freq_masks)
        start = _randint(0, num_freq - config.freq_width, shape, device)
        mask |= _spans(f, start, _randint(0, config.freq_width, shape, device)).any(dim=1)[:, :, None]
    if config.time_masks:
        shape = (n, config.time_masks)
        top = torch.clamp(lengths.to(device)[:, None] - config.time_width, min=1)
        start = _randint(0, top, shape, device)
        mask |= _spans(t, start, _randint(0, config.time_width, shape, device)).any(dim=1)[:, None, :]
    return mask


def spec_augment(features: torch.Tensor, lengths: torch.Tensor, config: SpecAugmentConfig) -> torch.Tensor:
    """MFCC (N, F, T) with cut-outs, frequency bands and time spans set to 0."""
    n, num_freq, num_time = features.shape
    return features.masked_fill(spec_augment_mask(n, num_freq, num_time, lengths, config, features.device), 0.0)
