"""Which frames a student learns from.

The original annotated its students only on frames that carry a ground-truth label for some
task (it cut those into 64-frame chunks, tails dropped), so students never trained on the
unannotated stretches of a video. `labelled` (the default) keeps a soft label only where some
task's ground truth exists: the clips are then cut from those frames (`--clips labelled`) and
the loss ignores the others (`--clips masked`). `all` is EMENet's every-frame annotation.
The ensemble still annotates every crop frame, streaming each video whole.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from emenet.data.clips import LabeledVideo
from emenet.data.soft_labels import DISTILL_KEY, SoftLabelLayout

STUDENT_FRAMES = ("labelled", "all")


def ground_truth_rows(video: LabeledVideo, layout: SoftLabelLayout) -> np.ndarray:
    """(n,) True where the frame has a ground-truth label for at least one of the layout's tasks."""
    mask = video.masks[DISTILL_KEY]
    return np.any([mask[:, layout.ground_truth[t]].any(axis=1) for t in layout.tasks], axis=0)


def keep_labelled_frames(videos: list[LabeledVideo], layout: SoftLabelLayout) -> list[LabeledVideo]:
    """The videos with their soft labels masked where no task has ground truth."""
    out = []
    for video in videos:
        keep = ground_truth_rows(video, layout)
        mask = video.masks[DISTILL_KEY].copy()
        for t in layout.tasks:
            mask[:, layout.soft[t]] &= keep[:, None]
        out.append(replace(video, masks={**video.masks, DISTILL_KEY: mask}))
    return out
