"""Where each frame's audio window sits: EMENet's exact timing, or the original's (`legacy`).

Exact: frame k's window is centred on (k + 0.5) / fps seconds, fps the video's true rate
(emenet.audio.window_centres). The original instead took fps from its annotation table, where
it was the video's rate rounded to an integer, and added 1 when loading clips ("to avoid too
large offset"); its students' tables had already been written with that incremented rate and
added 1 again, so students used round(fps) + 2. Its window for 0-based frame k started at
int(((k / F + (k + 1) / F) / 2) * sr - W // 2), clamped to the audio it had read. At 29.97 fps
(F = 31) the windows run ahead of the video by about 3%: roughly 10 s after five minutes.
`audio_timing="legacy"` reproduces that, so its released visual-audio checkpoints can be run on
the inputs they were trained with (as `sequence_layout="legacy"` does for its GRU).
"""
from __future__ import annotations

import numpy as np

AUDIO_TIMINGS = ("exact", "legacy")
LEGACY_FPS_INCREMENT = {"teacher": 1, "inference": 1, "student": 2}


def legacy_fps(fps: float, role: str = "teacher") -> int:
    """The frame rate the original timed windows with: round(fps) + 1 (+ 2 for students).

    >>> legacy_fps(29.97), legacy_fps(29.97, "student"), legacy_fps(25.0)
    (31, 32, 26)
    """
    if role not in LEGACY_FPS_INCREMENT:
        raise ValueError(f"role must be one of {list(LEGACY_FPS_INCREMENT)}, got {role!r}")
    return int(np.round(fps)) + LEGACY_FPS_INCREMENT[role]


def legacy_window_starts(frames: np.ndarray, fps: float, sample_rate: int, width: int, num_samples: int,
                         role: str = "teacher") -> np.ndarray:
    """First sample of each 0-based frame's window (N,), by the original's arithmetic and clamping."""
    f = legacy_fps(fps, role)
    k = np.asarray(frames, dtype=np.float64)
    middle = (k * (1.0 / f) + (k + 1.0) * (1.0 / f)) * 0.5  # seconds, as the original computed it
    starts = np.trunc(np.maximum(middle * sample_rate - width // 2, 0.0)).astype(np.int64)
    return np.minimum(starts, max(num_samples - width, 0))


def legacy_window_centres(frames: np.ndarray, fps: float, sample_rate: int, width: int, num_samples: int,
                          role: str = "teacher") -> np.ndarray:
    """Centre sample (start + width // 2) of each window the original cut."""
    return legacy_window_starts(frames, fps, sample_rate, width, num_samples, role) + width // 2
