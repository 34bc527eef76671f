"""From the Aff-wild2 index to per-video label arrays for one split."""
from __future__ import annotations

import numpy as np

from emenet.data.affwild2 import AffWild2Index
from emenet.data.clips import LabeledVideo
from emenet.errors import EMENetInputError


def labeled_videos(index: AffWild2Index, split: str, tasks: tuple[str, ...] | list[str],
                   max_videos: int | None = None) -> list[LabeledVideo]:
    """Every name annotated for any of `tasks` in `split`, with the labels of those tasks only
    (the first `max_videos` names when given)."""
    if max_videos is not None and max_videos < 1:  # a slice [:-1] would quietly drop the last video
        raise EMENetInputError(f"--max_videos must be at least 1 (leave it out for every video), got {max_videos}")
    names_by_task = {task: set(index.names(task, split)) for task in tasks}
    names = sorted(set().union(*names_by_task.values()))[:max_videos]
    videos = []
    for name in names:
        labels, masks, frames = {}, {}, None
        for task in tasks:
            if name not in names_by_task[task]:
                continue
            frames, labels[task], masks[task] = index.task_labels(name, task)
        if frames is None or len(frames) == 0:
            continue
        videos.append(LabeledVideo(name, index.crop_dir(name), np.asarray(frames), labels, masks))
    return videos
