"""Rendered aligned faces with known valence/arousal: frames for checks that need labels, not a dataset.

The int8 backend (emenet.fast.runners) calibrates and gates its quantized backbone on these.

    >>> frames = synthetic_faces(8, seed=0)
    >>> frames.crops.shape, frames.va.shape
    ((8, 112, 112, 3), (8, 2))
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from emenet.data.synth import sample_labels
from emenet.data.synth_face import FaceRenderer, FaceState, Identity

SYNTH_FPS = 30.0
FRAMES_PER_IDENTITY = 32


@dataclass(frozen=True)
class SyntheticFaces:
    crops: np.ndarray  # (N, 112, 112, 3) uint8 RGB aligned crops
    va: np.ndarray  # (N, 2) valence, arousal labels in [-1, 1]

    def float_frames(self) -> torch.Tensor:
        """(N, 3, 112, 112) float32 in [0, 1], the model's input."""
        return torch.from_numpy(self.crops).permute(0, 3, 1, 2).float().div(255.0).contiguous()


def synthetic_faces(num_frames: int, seed: int) -> SyntheticFaces:
    """Rendered aligned faces (emenet.data.synth_face) with their valence/arousal, a few identities."""
    rng = np.random.default_rng(seed)
    crops, va = [], []
    while len(crops) < num_frames:
        n = min(FRAMES_PER_IDENTITY, num_frames - len(crops))
        labels = sample_labels(rng, n, SYNTH_FPS)
        renderer = FaceRenderer(Identity.sample(rng), 1.0)
        for t in range(n):
            state = FaceState(au=labels.au_level[t], extra=labels.extra[t], valence=float(labels.valence[t]),
                              arousal=float(labels.arousal[t]))
            crops.append(renderer.render_crop(state))
            va.append((labels.valence[t], labels.arousal[t]))
    return SyntheticFaces(np.stack(crops), np.asarray(va, np.float32))
