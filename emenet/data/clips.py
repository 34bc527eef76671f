"""Cutting videos into training windows and validation chunks.

Training windows follow the original: `seq_len` consecutive crop frames taken every
`30 // fps` frames, with the last window aligned to the video's end. Frames whose label is
unannotated stay in the window (the recurrence needs them) and are masked in the loss.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emenet.data.audio_source import AudioSource, clip_vad, clip_windows

# The original sampled every `ORIGINAL_BASE_FPS // fps` frames, assuming 30 fps video.
ORIGINAL_BASE_FPS = 30


@dataclass
class LabeledVideo:
    """One face track's crop frames and, per task, labels (n, C) with an explicit mask (n, C)."""

    name: str
    crop_dir: Path  # holds <frame:05d>.jpg
    frames: np.ndarray  # (n,) 1-based frame numbers that have a crop, increasing
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    audio: AudioSource | None = None  # the video's audio, for EMENet-VA (emenet.data.audio_source; attached by emenet.data.audio_windows)

    def __post_init__(self) -> None:
        for task, lab in self.labels.items():
            if lab.shape[0] != len(self.frames) or self.masks[task].shape != lab.shape:
                raise ValueError(f"{self.name}/{task}: labels {lab.shape} and mask {self.masks[task].shape} "
                                 f"do not match {len(self.frames)} frames")

    def crop_paths(self, rows: np.ndarray) -> list[Path]:
        return [self.crop_dir / f"{f:05d}.jpg" for f in self.frames[rows]]

    def audio_windows(self, rows: np.ndarray, width: int) -> np.ndarray:
        """Audio windows (len(rows), width) of these rows' frames (crop frame f is video frame f - 1)."""
        if self.audio is None:
            raise ValueError(f"{self.name}: no audio attached (emenet.data.audio_windows.attach_audio)")
        return clip_windows(self.audio, self.frames[rows] - 1, width)

    def vad_targets(self, rows: np.ndarray) -> np.ndarray:
        """The voice-activity teacher's speech probability (len(rows),) of these rows' frames."""
        if self.audio is None:
            raise ValueError(f"{self.name}: no audio attached (emenet.data.audio_windows.attach_audio)")
        return clip_vad(self.audio, self.frames[rows] - 1)


def frame_stride(fps: int) -> int:
    if fps < 1 or fps > ORIGINAL_BASE_FPS:
        raise ValueError(f"--fps must be in 1..{ORIGINAL_BASE_FPS}, got {fps}")
    return ORIGINAL_BASE_FPS // fps


def window_starts(length: int, seq_len: int) -> np.ndarray:
    """Starts of non-overlapping windows over `length` rows, the last one aligned to the end.

    >>> window_starts(10, 4).tolist()
    [0, 4, 6]
    """
    if length <= seq_len:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, length - seq_len + 1, seq_len)
    if starts[-1] + seq_len < length:
        starts = np.append(starts, length - seq_len)
    return starts


def training_windows(videos: list[LabeledVideo], task: str, seq_len: int, fps: int) -> list[tuple[int, np.ndarray]]:
    """(video position, row indices (seq_len,)) for every window with at least one label of `task`.

    Videos shorter than a window give one window padded with -1 (padding is masked).
    """
    stride = frame_stride(fps)
    windows = []
    for vid, video in enumerate(videos):
        if task not in video.masks:
            continue
        rows = np.arange(0, len(video.frames), stride)
        labeled = video.masks[task].any(axis=1)
        for start in window_starts(len(rows), seq_len):
            idx = rows[start:start + seq_len]
            if not labeled[idx].any():
                continue
            if len(idx) < seq_len:
                idx = np.concatenate([idx, np.full(seq_len - len(idx), -1)])
            windows.append((vid, idx))
    return windows


def chunk_bounds(length: int, chunk: int) -> list[tuple[int, int]]:
    """Consecutive [start, stop) chunks covering `length` rows, for streaming with a carried state."""
    return [(s, min(s + chunk, length)) for s in range(0, length, chunk)]
