"""A video's audio for training, and the per-frame windows cut from it.

Below `emenet.data.clips` (whose `LabeledVideo` carries an `AudioSource`) and
`emenet.data.audio_windows` (which decodes the tracks and attaches them), so that neither
imports the other to reach these pieces.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emenet.audio import SAMPLE_RATE, window_centres
from emenet.audio_timing import legacy_window_starts


@dataclass(frozen=True)
class AudioSource:
    """Where a name's audio lives: its video's cached track, frame rate, and optional VAD targets."""

    track: Path  # .npy float32 (num_samples,) at `sample_rate`
    fps: float
    sample_rate: int = SAMPLE_RATE
    vad: Path | None = None  # .npy float32 (num_video_frames,): the VAD teacher's speech probability
    timing: str = "exact"  # exact | legacy (emenet.audio_timing)
    legacy_role: str = "teacher"  # legacy timing only: teacher | inference | student


def cut_windows(samples: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Windows samples[s : s + width] for every start s (N,) -> (N, width) float32, zeros outside.

    Only the span the windows cover is read (so `samples` may be a memory map of a long track),
    and all windows are gathered from one strided view of it, without a loop.
    """
    starts = np.asarray(starts, dtype=np.int64)
    if starts.size == 0:
        return np.zeros((0, width), np.float32)
    lo, hi = int(starts.min()), int(starts.max()) + width
    span = np.zeros(hi - lo, np.float32)
    a, b = max(lo, 0), min(hi, len(samples))
    if b > a:
        span[a - lo:b - lo] = samples[a:b]
    view = np.lib.stride_tricks.sliding_window_view(span, width)  # (hi - lo - width + 1, width), no copy
    return np.ascontiguousarray(view[starts - lo])


def clip_windows(source: AudioSource, frames: np.ndarray, width: int) -> np.ndarray:
    """Audio windows (N, width) of 0-based video frames `frames` (e.g. crop frame numbers - 1)."""
    samples = np.load(source.track, mmap_mode="r", allow_pickle=False)
    if source.timing == "legacy":
        starts = legacy_window_starts(frames, source.fps, source.sample_rate, width, len(samples), source.legacy_role)
    else:
        starts = window_centres(np.asarray(frames, dtype=np.int64), source.fps, source.sample_rate) - width // 2
    return cut_windows(samples, starts, width)


def clip_vad(source: AudioSource, frames: np.ndarray) -> np.ndarray:
    """The VAD teacher's speech probability (N,) of 0-based video frames (clamped to the track's frames)."""
    if source.vad is None:
        raise ValueError("this audio source has no VAD targets; prepare them with attach_audio(vad_teacher=...)")
    targets = np.load(source.vad, mmap_mode="r", allow_pickle=False)
    return np.asarray(targets[np.clip(np.asarray(frames, dtype=np.int64), 0, len(targets) - 1)], dtype=np.float32)
