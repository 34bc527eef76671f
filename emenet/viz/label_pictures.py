"""The `--vis` pictures of the dataset index and of an ensemble annotation (AU frequency, task affinity).

    >>> index = load_affwild2_index("data/synth")  # doctest: +SKIP
    >>> write_index_pictures(index, "runs/vis")  # doctest: +SKIP
    [PosixPath('runs/vis/au_frequency.png'), PosixPath('runs/vis/task_affinity.png')]
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from emenet.data.affwild2 import SPLITS, AffWild2Index
from emenet.errors import EMENetInputError
from emenet.io_utils import check_output_file
from emenet.viz.label_statistics import (au_frequency, one_hot_expressions, plot_au_frequency, plot_task_affinity,
                                           save_figure, task_affinity)
from emenet.tasks import AU_NAMES


def index_summary(index: AffWild2Index) -> dict:
    """Release, class count and the number of names and labelled frames per task and split."""
    videos, frames = index.videos, index.frames
    out: dict = {"data_root": str(index.data_root), "release": index.release,
                 "num_expr_classes": index.num_expr_classes, "names": len(videos), "cropped_frames": len(frames)}
    columns = {"AU": list(AU_NAMES), "EXPR": ["expr"], "VA": ["valence"]}
    for task, cols in columns.items():
        for split in SPLITS:
            names = set(videos.loc[videos[f"split_{task}"] == split, "name"])
            rows = frames[frames["name"].isin(names)]
            labelled = rows[cols[0]].notna() & (rows[cols[0]] >= (-1 if task == "VA" else 0))
            out[f"{task}_{split}"] = {"names": len(names), "labelled_frames": int(labelled.sum())}
    return out


def _split_arrays(index: AffWild2Index, split: str) -> tuple[np.ndarray, np.ndarray]:
    """AU labels (N, 12) and one-hot expressions (N, K) of the frames of `split`, unannotated masked."""
    videos, frames = index.videos, index.frames
    au_names = set(videos.loc[videos["split_AU"] == split, "name"])
    expr_names_ = set(videos.loc[videos["split_EXPR"] == split, "name"])
    rows = frames[frames["name"].isin(au_names | expr_names_)]
    au = np.array(rows[list(AU_NAMES)].to_numpy(np.float64))  # a copy: the index is read-only
    au[~rows["name"].isin(au_names).to_numpy()] = -1
    expr = np.where(rows["name"].isin(expr_names_).to_numpy(), rows["expr"].to_numpy(np.int64), -1)
    return au, one_hot_expressions(expr, index.num_expr_classes)


PICTURES = ("au_frequency.png", "task_affinity.png")


def check_pictures_free(out_dir: str | os.PathLike, overwrite: bool) -> None:
    """Refuse, before the work, to replace the pictures in `out_dir` unless `overwrite`."""
    for name in PICTURES:
        check_output_file(Path(out_dir) / name, overwrite)


def write_index_pictures(index: AffWild2Index, out_dir: str | os.PathLike, overwrite: bool = False) -> list[Path]:
    """AU frequency (train and validation) and task affinity (train) of the dataset's labels."""
    out = Path(out_dir)
    check_pictures_free(out, overwrite)
    arrays = {split: _split_arrays(index, split) for split in SPLITS}
    frequencies = {split: au_frequency(au) for split, (au, _) in arrays.items() if len(au)}
    if not frequencies:
        raise EMENetInputError(f"{index.data_root}: no AU or expression labels to draw")
    paths = [save_figure(plot_au_frequency(frequencies, f"AU frequency ({index.release})"), out / PICTURES[0])]
    au, expr = arrays["Train_Set"]
    paths.append(save_figure(plot_task_affinity(task_affinity(au, expr), "P(AU active | expression), training labels"),
                             out / PICTURES[1]))
    return paths


def write_annotation_pictures(ann_dir: str | os.PathLike, out_dir: str | os.PathLike,
                              overwrite: bool = False) -> list[Path]:
    """The same pictures from an ensemble annotation: its mean probabilities beside the ground truth."""
    from emenet.data.soft_labels import mean_probabilities  # distill imports training code: keep it lazy
    ann_dir, out = Path(ann_dir), Path(out_dir)
    check_pictures_free(out, overwrite)
    manifest = json.loads((ann_dir / "manifest.json").read_text())
    tasks = tuple(t for t in ("AU", "EXPR") if t in manifest["tasks"])
    if len(tasks) < 2:
        raise EMENetInputError(f"{ann_dir}: the pictures need an ensemble that predicts AU and EXPR")
    classes = int(manifest.get("num_expr_classes", 7))
    au_soft, expr_soft, au_true = [], [], []
    for path in sorted((ann_dir / "frames").glob("*.parquet")):
        frames = pd.read_parquet(path)
        probs = mean_probabilities(frames, len(manifest["members"]), tasks, classes)
        au_soft.append(probs["AU"])
        expr_soft.append(probs["EXPR"])
        au_true.append(frames[list(AU_NAMES)].to_numpy(np.float64))
    if not au_soft:
        raise EMENetInputError(f"{ann_dir}: no annotated videos to draw")
    au_soft_all, expr_soft_all = np.concatenate(au_soft), np.concatenate(expr_soft)
    frequencies = {"ensemble (mean probability)": au_frequency(au_soft_all),
                   "ground truth": au_frequency(np.nan_to_num(np.concatenate(au_true), nan=-1))}
    return [save_figure(plot_au_frequency(frequencies, "AU frequency, ensemble annotation"), out / PICTURES[0]),
            save_figure(plot_task_affinity(task_affinity(au_soft_all, expr_soft_all),
                                           "P(AU active | expression), ensemble soft labels"),
                        out / PICTURES[1])]

