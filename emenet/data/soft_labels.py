"""Soft labels for students: the ensemble's mean distributions (and ground truth where it exists).

A student clip carries one label vector per frame, laid out by `SoftLabelLayout`:
[AU mean probs (12) | EXPR mean softmax (7, or 8 with `Other`) | VA mean 20-bin softmax per dimension (40) |
 ground-truth AU (12) | EXPR (1) | VA (2)], with a mask that is True on every soft entry of a
real frame and True on ground-truth entries only where the frame is annotated.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from emenet.data.clips import LabeledVideo
from emenet.decoding import task_probs
from emenet.distill.annotate import ANNOTATION_FORMAT, logit_columns
from emenet.errors import EMENetInputError
from emenet.tasks import AU_NAMES, DISTILL_KEY, TASKS

_SOFT_WIDTH = {"AU": 12, "EXPR": 7, "VA": 40}
_GT_COLUMNS = {"AU": list(AU_NAMES), "EXPR": ["expr"], "VA": ["valence", "arousal"]}


@dataclass(frozen=True)
class SoftLabelLayout:
    tasks: tuple[str, ...]
    num_expr_classes: int = 7  # the ensemble's expression classes (8 with `Other`)

    @property
    def _soft_widths(self) -> dict[str, int]:
        return {**_SOFT_WIDTH, "EXPR": self.num_expr_classes}

    def _slices(self, widths: dict[str, int], start: int) -> tuple[dict[str, slice], int]:
        out = {}
        for t in self.tasks:
            out[t] = slice(start, start + widths[t])
            start += widths[t]
        return out, start

    @property
    def soft(self) -> dict[str, slice]:
        return self._slices(self._soft_widths, 0)[0]

    @property
    def ground_truth(self) -> dict[str, slice]:
        return self._slices({t: len(c) for t, c in _GT_COLUMNS.items()}, self._slices(self._soft_widths, 0)[1])[0]

    @property
    def width(self) -> int:
        return sum(self._soft_widths[t] + len(_GT_COLUMNS[t]) for t in self.tasks)


def read_manifest(ann_dir: str | os.PathLike) -> dict:
    path = Path(ann_dir) / "manifest.json"
    if not path.is_file():
        raise EMENetInputError(f"{ann_dir}: not an annotation directory (no manifest.json); "
                               f"make one with create_new_annotations.py")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != ANNOTATION_FORMAT:
        raise EMENetInputError(f"{path}: unknown annotation format {manifest.get('format')!r}")
    if not manifest.get("complete"):
        raise EMENetInputError(f"{ann_dir}: annotation is incomplete; rerun create_new_annotations.py to finish it")
    return manifest


def mean_probabilities(frame_table: pd.DataFrame, num_members: int, tasks: tuple[str, ...],
                       num_expr_classes: int = 7) -> dict[str, np.ndarray]:
    """task -> the members' mean probabilities: AU (n, 12), EXPR (n, 7 or 8), VA (n, 2, 20)."""
    out = {}
    for t in tasks:
        probs = []
        for i in range(num_members):
            cols = logit_columns(i, (t,), num_expr_classes)
            probs.append(task_probs(t, torch.tensor(frame_table[cols].to_numpy(np.float32))))
        out[t] = torch.stack(probs).mean(0).numpy()
    return out


def soft_label_videos(ann_dir: str | os.PathLike, data_root: str | os.PathLike, split: str = "Train_Set",
                      tasks: tuple[str, ...] | None = None) -> tuple[list[LabeledVideo], SoftLabelLayout]:
    """Every video of `split` (for any task) with soft labels on all its frames."""
    manifest = read_manifest(ann_dir)
    ens_tasks = tuple(manifest["tasks"])
    tasks = ens_tasks if tasks is None else tuple(tasks)
    missing = [t for t in tasks if t not in ens_tasks]
    if missing:
        raise EMENetInputError(f"{ann_dir}: the ensemble did not predict {missing} (it has {list(ens_tasks)})")
    num_expr_classes = int(manifest.get("num_expr_classes", 7))  # annotations made before 8 classes existed: 7
    layout = SoftLabelLayout(tasks, num_expr_classes)
    table = pd.read_parquet(Path(ann_dir) / "videos.parquet")
    crop_dirs = dict(zip(table["name"], table["crop_dir"])) if "crop_dir" in table else {}
    in_split = (table[[f"split_{t}" for t in ens_tasks]] == split).any(axis=1)
    videos = []
    for name in table.loc[in_split, "name"]:
        frames = pd.read_parquet(Path(ann_dir) / "frames" / f"{name}.parquet")
        probs = mean_probabilities(frames, len(manifest["members"]), tasks, num_expr_classes)
        n = len(frames)
        labels = np.zeros((n, layout.width), np.float32)
        mask = np.zeros((n, layout.width), bool)
        for t in tasks:
            s = layout.soft[t]
            labels[:, s] = probs[t].reshape(n, -1)
            mask[:, s] = True
            g = layout.ground_truth[t]
            gt = frames[_GT_COLUMNS[t]].to_numpy(np.float32)
            valid = ~np.isnan(gt) & (gt != TASKS[t].missing_value)
            labels[:, g] = np.where(valid, gt, 0.0)
            mask[:, g] = valid
        crop_dir = Path(crop_dirs[name]) if name in crop_dirs else Path(data_root) / "cropped_aligned" / name
        videos.append(LabeledVideo(name, crop_dir, frames["frame"].to_numpy(),
                                   {DISTILL_KEY: labels}, {DISTILL_KEY: mask}))
    return videos, layout
