"""Fit a split-conformal calibration for an ensemble on held-out videos and save it.

Frames of one video are not exchangeable (they share a face, a scene, a mood), videos are: the
validation videos are split into a calibration half and an evaluation half by whole source
video (emenet.evaluation.validate_ensemble.split_videos: `_left`/`_right` names stay together),
thresholds are fitted on the calibration half's annotated frames and the coverage and set size
they give are measured on the other half. The split and the measurements go into the file.

    >>> members = members_from_names(["t0", "t1"], [4], "checkpoints")  # doctest: +SKIP
    >>> cal, path = fit_conformal(members, "data/affwild2", checkpoints_dir="checkpoints")  # doctest: +SKIP
    >>> cal.level(0.9)["measured"]["EXPR"]["coverage"]  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from emenet.conformal.calibration_file import ConformalCalibration, coverage_key, default_calibration_path
from emenet.conformal.regions import AbstainRule, SetMethod, fit_thresholds, measure
from emenet.conformal.scores import check_coverage
from emenet.data.clips import LabeledVideo
from emenet.distill.members import Member
from emenet.evaluation.validate_ensemble import (MethodOutputs, check_device, load_ensemble_members, split_held_out_videos,
                                              stream_members_and_mc_dropout, task_label_array)
from emenet.errors import EMENetInputError
from emenet.io_utils import check_output_file

log = logging.getLogger(__name__)


def annotated_frames(videos: Sequence[LabeledVideo], probs: Sequence[dict[str, np.ndarray]], subset: Sequence[int],
                     tasks: Sequence[str]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(probs, labels) per task over the annotated frames of the `subset` videos."""
    out_p, out_y = {}, {}
    for task in tasks:
        parts = []
        for i in subset:
            y = task_label_array(videos[i], task)
            if y is not None:
                keep = videos[i].masks[task].any(axis=1)
                parts.append((probs[i][task][keep], y[keep]))
        if parts and sum(len(y) for _, y in parts):
            out_p[task] = np.concatenate([p for p, _ in parts])
            out_y[task] = np.concatenate([y for _, y in parts])
    return out_p, out_y


def fit_levels(cal: tuple[dict, dict], evaluation: tuple[dict, dict], coverages: Sequence[float],
               method: SetMethod) -> dict[str, dict]:
    """Thresholds fitted on `cal` and measured on `evaluation`, per coverage."""
    levels = {}
    for c in coverages:
        thresholds = fit_thresholds(*cal, c, method)
        levels[coverage_key(c)] = {"coverage": float(c), "thresholds": thresholds,
                                   "measured": measure(*evaluation, thresholds, c, method) if evaluation[0] else {}}
    return levels


def fit_conformal(members: Sequence[Member], data_root: str | os.PathLike, out: str | os.PathLike | None = None, *,
                  checkpoints_dir: str | os.PathLike | None = None, coverages: Sequence[float] = (0.9,),
                  split: str = "Validation_Set", calibration_fraction: float = 0.5, seed: int = 0,
                  method: SetMethod = SetMethod(), abstain: AbstainRule = AbstainRule(), chunk: int = 64,
                  device: str = "cpu", num_workers: int = 0, cache_dir: str | os.PathLike | None = None,
                  audio_dir: str | os.PathLike | None = None, max_videos: int | None = None,
                  overwrite: bool = False, progress: bool = True) -> tuple[ConformalCalibration, Path]:
    """Fit, measure and save; the file goes to `out`, else conformal_<key>.json in `checkpoints_dir`
    (default: the folder above the first member's run folder)."""
    coverages = sorted({check_coverage(c) for c in coverages}) if coverages else []
    if not coverages:
        raise EMENetInputError("--coverage: give at least one target coverage")
    if chunk < 1:
        raise EMENetInputError(f"--chunk must be >= 1, got {chunk}")
    check_device(device)
    hashes = [m.sha256() for m in members] if members else []
    path = Path(out) if out else default_calibration_path(
        checkpoints_dir or Path(members[0].checkpoint).parent.parent, hashes) if members else None
    if path is not None:
        check_output_file(path, overwrite)
    models, tasks = load_ensemble_members(members, device)
    videos, calibration, evaluation = split_held_out_videos(models, tasks, data_root, split, calibration_fraction,
                                                            seed, max_videos, audio_dir, cache_dir, progress)

    probs: list[dict[str, np.ndarray]] = [{}] * len(videos)
    for vid, logits, _ in stream_members_and_mc_dropout(models, videos, tasks, 0, 0, chunk, device, num_workers,
                                                        seed, progress):
        probs[vid] = MethodOutputs.from_logits(logits).probs
    cal = annotated_frames(videos, probs, calibration, tasks)
    held_out = annotated_frames(videos, probs, evaluation, tasks)
    for task in tasks:
        if task not in cal[0]:
            log.warning("no calibration video is annotated for %s: it gets no conformal sets", task)
    calibration_result = ConformalCalibration(
        members=[{"name": m.name, "epoch": m.epoch, "file": Path(m.checkpoint).name, "sha256": h}
                 for m, h in zip(members, hashes)],
        method=method, abstain=abstain,
        split={"data_root": str(Path(data_root).resolve()), "split": split, "unit": "source video",
               "seed": seed, "calibration_fraction": calibration_fraction,
               "calibration_videos": [videos[i].name for i in calibration],
               "evaluation_videos": [videos[i].name for i in evaluation],
               "calibration_frames": {t: int(len(y)) for t, y in cal[1].items()},
               "evaluation_frames": {t: int(len(y)) for t, y in held_out[1].items()}},
        levels=fit_levels(cal, held_out, coverages, method))
    calibration_result.save(path, overwrite)
    log.info("conformal calibration written to %s", path)
    return calibration_result, path


def measured_table(cal: ConformalCalibration) -> list[dict]:
    """One row per target coverage: measured coverage and size per task on the evaluation half."""
    rows = []
    for key in sorted(cal.levels, key=float):
        m = cal.levels[key]["measured"]
        row = {"target": float(key)}
        if "EXPR" in m:
            row.update({"EXPR_coverage": m["EXPR"]["coverage"], "EXPR_mean_set_size": m["EXPR"]["mean_set_size"]})
        if "AU" in m:
            row.update({"AU_coverage": m["AU"]["coverage"], "AU_mean_undecided": m["AU"]["mean_undecided"]})
        for d in ("valence", "arousal"):
            if d in m:
                row.update({f"{d}_coverage": m[d]["coverage"], f"{d}_mean_width": m[d]["mean_width"]})
        rows.append(row)
    return rows
