"""Conformal sets, intervals and abstain flags for per-frame predictions.

Applied after prediction to the per-frame results, from their probability columns, so any table
of EMENet predictions (a video's CSV, a photo's result, the test-set rows) gets the same columns:

    EXPR_set          the possible expressions, most likely first, joined by '|' ("Happiness|Surprise")
    EXPR_set_size     how many
    AU<k>_set         "0", "1", "0|1" (undecided) or "" (empty: neither value reached the threshold)
    valence_lo, valence_hi, arousal_lo, arousal_hi   the intervals, inside [-1, 1]
    abstain_EXPR, abstain_AU, abstain_VA             the calibration's AbstainRule

    >>> conformal = ConformalSettings.for_checkpoints(["a.pth", "b.pth"], coverage=0.9)  # doctest: +SKIP
    >>> table = conformal.add_columns(predictions.to_dataframe())  # doctest: +SKIP
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emenet.conformal.calibration_file import ConformalCalibration, find_calibration, load_calibration
from emenet.conformal.regions import Regions, abstain_flags, predict_regions
from emenet.errors import EMENetInputError
from emenet.io_utils import file_sha256
from emenet.tasks import AU_NAMES, EXPR_NAMES, EXPR_NAMES_WITH_OTHER, NUM_VA_BINS, TASKS, VA_NAMES, TaskKind, expr_names

AU_SET_NAMES = {(True, False): "0", (False, True): "1", (True, True): "0|1", (False, False): ""}


def probs_from_table(table: pd.DataFrame) -> dict[str, np.ndarray]:
    """The probabilities in a prediction table's columns (emenet.inference.FramePredictions.to_dataframe)."""
    out = {}
    names = EXPR_NAMES_WITH_OTHER if f"{EXPR_NAMES_WITH_OTHER[-1]}_prob" in table.columns else EXPR_NAMES
    expr = [f"{n}_prob" for n in names]  # 7 classes, or 8 with Other (later Aff-wild2 releases)
    if all(c in table.columns for c in expr):
        out["EXPR"] = table[expr].to_numpy(dtype=np.float64)
    au = [f"{n}_prob" for n in AU_NAMES]
    if all(c in table.columns for c in au):
        out["AU"] = table[au].to_numpy(dtype=np.float64)
    va = [f"{d}_bin{b:02d}_prob" for d in VA_NAMES for b in range(NUM_VA_BINS)]
    if all(c in table.columns for c in va):
        out["VA"] = table[va].to_numpy(dtype=np.float64).reshape(len(table), 2, NUM_VA_BINS)
    return out


def _expr_set_names(sets: np.ndarray, probs: np.ndarray) -> list[str]:
    order = np.argsort(-probs, axis=1, kind="stable")
    names = expr_names(probs.shape[1])
    return ["|".join(names[k] for k in row_order if row_set[k]) for row_order, row_set in zip(order, sets)]


def region_columns(regions: Regions, probs: dict[str, np.ndarray], flags: dict[str, np.ndarray], n: int,
                   valid: np.ndarray | None = None) -> pd.DataFrame:
    """The columns above for n frames; rows where `valid` is False (no probabilities) stay empty."""
    valid = np.ones(n, dtype=bool) if valid is None else valid
    cols: dict[str, Any] = {}
    if regions.expr is not None:
        names = np.array(_expr_set_names(regions.expr, probs["EXPR"]), dtype=object)
        cols["EXPR_set"] = np.where(valid, names, "")
        cols["EXPR_set_size"] = np.where(valid, regions.expr.sum(axis=1), 0)
    if regions.au_has0 is not None:
        for j, name in enumerate(AU_NAMES):
            values = [AU_SET_NAMES[(bool(a), bool(b))] for a, b in zip(regions.au_has0[:, j], regions.au_has1[:, j])]
            cols[f"{name}_set"] = np.where(valid, np.array(values, dtype=object), "")
    if regions.va_lo is not None:
        for d, name in enumerate(VA_NAMES):
            cols[f"{name}_lo"] = np.where(valid, regions.va_lo[:, d], np.nan)
            cols[f"{name}_hi"] = np.where(valid, regions.va_hi[:, d], np.nan)
    for key, value in flags.items():
        cols[key] = value & valid
    return pd.DataFrame(cols, index=pd.RangeIndex(n))


@dataclass(frozen=True)
class ConformalSettings:
    """A loaded calibration and the coverage to use, checked against the predictor's checkpoints."""

    calibration: ConformalCalibration
    coverage: float
    source: Path

    @property
    def thresholds(self) -> dict[str, Any]:
        return self.calibration.level(self.coverage)["thresholds"]

    @classmethod
    def for_checkpoints(cls, checkpoints: Sequence[str | os.PathLike], coverage: float | None = None,
                        path: str | os.PathLike | None = None) -> "ConformalSettings":
        """Load `path`, or find the saved calibration of these checkpoint files; check it names them by
        hash and has `coverage` (None: the file's only coverage, or 0.9)."""
        hashes = [file_sha256(c) for c in checkpoints]
        source = Path(path) if path is not None else find_calibration(checkpoints, hashes)
        cal = load_calibration(source)
        cal.check_members(hashes, str(source))
        level = cal.level(coverage)
        return cls(cal, float(level.get("coverage", coverage or 0.9)), source)

    def regions(self, probs: dict[str, np.ndarray]) -> Regions:
        return predict_regions(probs, self.thresholds, self.coverage, self.calibration.method)

    def columns(self, probs: dict[str, np.ndarray], n: int) -> pd.DataFrame:
        """The conformal columns of n frames' probabilities (rows without probabilities stay empty)."""
        valid = np.ones(n, dtype=bool)
        clean = {}
        for task, p in probs.items():
            finite = np.isfinite(p.reshape(n, -1)).all(axis=1)
            valid &= finite
            clean[task] = np.where(finite.reshape((n,) + (1,) * (p.ndim - 1)), p, 1.0 / p.shape[-1])
        regions = self.regions(clean)
        return region_columns(regions, clean, abstain_flags(regions, self.calibration.abstain), n, valid)

    def add_columns(self, table: pd.DataFrame) -> pd.DataFrame:
        """`table` (one row per frame, with probability columns) with the conformal columns appended."""
        probs = probs_from_table(table)
        if not probs:
            raise EMENetInputError("conformal sets need the predictions' probability columns, found none")
        extra = self.columns(probs, len(table))
        extra.index = table.index
        return pd.concat([table, extra], axis=1)

    def describe(self) -> dict[str, Any]:
        """What a result file records about the sets: file, coverage, method, abstain rule."""
        m = self.calibration.method
        return {"file": str(self.source), "coverage": self.coverage, "expr_method": m.expr_method,
                "abstain": self.calibration.abstain.to_dict(),
                "guarantee": "marginal coverage over frames of new videos exchangeable with the calibration videos"}


def conformal_from_args(checkpoints: Sequence[str | os.PathLike], coverage: float | None,
                        path: str | os.PathLike | None) -> ConformalSettings | None:
    """`--coverage C` and/or `--conformal FILE` -> settings; neither -> None."""
    if coverage is None and path is None:
        return None
    if coverage is not None and not 0.0 < coverage < 1.0:
        raise EMENetInputError(f"--coverage must be strictly between 0 and 1, got {coverage}")
    return ConformalSettings.for_checkpoints(checkpoints, coverage, path)


def probs_from_predictions(predictions: Any) -> dict[str, np.ndarray]:
    """The probabilities of an emenet.inference.FramePredictions, per task present."""
    found = {"EXPR": predictions.expr_probs, "AU": predictions.au_probs, "VA": predictions.va_probs}
    return {t: np.asarray(p, dtype=np.float64) for t, p in found.items() if p is not None}


def prediction_columns(settings: ConformalSettings, predictions: Any) -> pd.DataFrame:
    """The conformal columns of each frame of a FramePredictions (one row per frame)."""
    return settings.columns(probs_from_predictions(predictions), len(predictions))


# Per kind: the conformal columns of one task (see the module docstring), before its abstain flag.
_KIND_COLUMNS = {TaskKind.MULTICLASS: lambda spec: [f"{spec.name}_set", f"{spec.name}_set_size"],
                 TaskKind.MULTILABEL: lambda spec: [f"{n}_set" for n in spec.names],
                 TaskKind.BINNED_REGRESSION: lambda spec: [f"{d}_{s}" for d in spec.names for s in ("lo", "hi")]}


def task_columns(columns: pd.DataFrame, task: str) -> pd.DataFrame:
    """The conformal columns that belong to one task (for per-task files such as the test set's)."""
    spec = TASKS[task]
    keep = [*_KIND_COLUMNS[spec.kind](spec), f"abstain_{task}"]
    return columns[[c for c in keep if c in columns.columns]]
