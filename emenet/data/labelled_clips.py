"""Training clips as the original cut them: runs of `seq_len` frames that carry a label.

For each task the original kept, per video, the list of frames that have both a crop and a
label for that task, and cut that list into consecutive non-overlapping runs of `seq_len`
(so a clip may jump over an unannotated span); the tail shorter than `seq_len` is dropped and
a video with fewer labelled frames gives no clip. Below 30 fps it took every `30 // fps`-th
frame of the list, once from each offset. `--clips masked` (emenet.data.clips.training_windows)
keeps every crop frame instead, masks the unlabelled ones and pads short videos.
"""
from __future__ import annotations

import numpy as np

from emenet.data.clips import LabeledVideo, frame_stride, training_windows
from emenet.tasks import DISTILL_KEY

CLIP_MODES = ("labelled", "masked")


def labelled_rows(video: LabeledVideo, task: str) -> np.ndarray:
    """Rows (crop frames) whose label for `task` is complete; the original dropped a row with any unannotated value.

    A student's soft-label table (task "distill") counts a row as labelled where it has soft labels
    (mask column 0); its ground-truth columns may be unannotated.
    """
    mask = video.masks[task]
    return np.flatnonzero(mask[:, 0] if task == DISTILL_KEY else mask.all(axis=1))


def labelled_runs(rows: np.ndarray, seq_len: int, stride: int = 1) -> list[np.ndarray]:
    """Non-overlapping runs of `seq_len` entries of `rows[offset::stride]` for every offset, tails dropped.

    >>> [r.tolist() for r in labelled_runs(np.array([0, 1, 2, 5, 6, 7, 8, 9]), 3)]
    [[0, 1, 2], [5, 6, 7]]
    """
    runs = []
    for offset in range(stride):
        sampled = rows[offset::stride]
        whole = len(sampled) // seq_len * seq_len
        runs.extend(sampled[:whole].reshape(-1, seq_len))
    return runs


def labelled_training_windows(videos: list[LabeledVideo], task: str, seq_len: int, fps: int
                              ) -> list[tuple[int, np.ndarray]]:
    """(video position, row indices (seq_len,)) of every clip of labelled frames, as the original cut them."""
    stride = frame_stride(fps)
    return [(vid, run) for vid, video in enumerate(videos) if task in video.masks
            for run in labelled_runs(labelled_rows(video, task), seq_len, stride)]


def clip_windows(videos: list[LabeledVideo], task: str, seq_len: int, fps: int, mode: str = "labelled"
                 ) -> list[tuple[int, np.ndarray]]:
    """The training clips of one task: `labelled` (the original's) or `masked` (every crop frame, masked)."""
    if mode == "labelled":
        return labelled_training_windows(videos, task, seq_len, fps)
    if mode == "masked":
        return training_windows(videos, task, seq_len, fps)
    raise ValueError(f"clips must be one of {list(CLIP_MODES)}, got {mode!r}")
