"""Per-frame predictions of one model or an ensemble, as arrays, a DataFrame or JSON.

`FramePredictions` holds N frames. Every array's first axis is the frame; a task the
models do not predict is None. Uncertainty is normalized entropy in [0, 1] (see
emenet.uncertainty): for one model `total` is its own (aleatoric) uncertainty and
`epistemic` is None; for an ensemble, total = aleatoric + epistemic.

    >>> preds.to_dataframe()[["AU12_prob", "AU12", "expression_name", "valence"]]  # doctest: +SKIP
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import pandas as pd

from emenet.tasks import (AU_NAMES, EMOTION_TASKS, EXPR_NAMES, NUM_LANDMARKS, NUM_VA_BINS, VA_BIN_CENTRES, VA_NAMES,
                          expr_names)

UNCERTAINTY_KINDS: tuple[str, ...] = ("total", "aleatoric", "epistemic")


@dataclass(frozen=True)
class TaskUncertainty:
    """Normalized-entropy uncertainty of one task: AU (N, 12), EXPR (N,), VA (N, 2)."""

    total: np.ndarray
    aleatoric: np.ndarray
    epistemic: np.ndarray | None = None  # ensembles only

    def take(self, index: np.ndarray) -> "TaskUncertainty":
        return TaskUncertainty(self.total[index], self.aleatoric[index],
                               None if self.epistemic is None else self.epistemic[index])


@dataclass(frozen=True)
class FramePredictions:
    """Predictions for N frames of one face.

    Attributes (None when the models lack the task):
        au_probs (N, 12) occurrence probabilities (ensemble: mean), au (N, 12) 0/1 (> 0.5);
        expr_probs (N, 7) softmax (ensemble: mean), expr (N,) class index (argmax);
        va_probs (N, 2, 20) bin probabilities (valence, arousal), va (N, 2) expectations over
        linspace(-1, 1, 20); uncertainty: task -> TaskUncertainty ("AU", "EXPR", "VA");
        landmarks (N, 68, 2) x, y in crop-normalized coordinates ([0, 1] across the 112x112
        crop), from the face-alignment head (ensemble: mean over the members that have it).
    """

    num_models: int
    au_probs: np.ndarray | None = None
    au: np.ndarray | None = None
    expr_probs: np.ndarray | None = None
    expr: np.ndarray | None = None
    va_probs: np.ndarray | None = None
    va: np.ndarray | None = None
    uncertainty: dict[str, TaskUncertainty] | None = None
    landmarks: np.ndarray | None = None

    def __len__(self) -> int:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                return value.shape[0]
        return 0

    @property
    def tasks(self) -> tuple[str, ...]:
        """The emotion tasks present, in the checkpoints' order (EXPR, AU, VA)."""
        present = {"EXPR": self.expr_probs, "AU": self.au_probs, "VA": self.va_probs}
        return tuple(t for t in EMOTION_TASKS if present[t] is not None)

    def task_arrays(self, task: str) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(predictions, probabilities) of one emotion task: AU (N, 12) 0/1 and (N, 12), EXPR
        (N,) classes and (N, C), VA (N, 2) values and (N, 2, 20)."""
        arrays = {"AU": (self.au, self.au_probs), "EXPR": (self.expr, self.expr_probs), "VA": (self.va, self.va_probs)}
        return arrays[task]

    @property
    def is_ensemble(self) -> bool:
        return self.num_models > 1

    @property
    def valence(self) -> np.ndarray | None:
        return None if self.va is None else self.va[:, 0]

    @property
    def arousal(self) -> np.ndarray | None:
        return None if self.va is None else self.va[:, 1]

    @property
    def expr_classes(self) -> tuple[str, ...]:
        """The expression class names of these predictions: 7, or 8 with `Other` (3rd ABAW on)."""
        return EXPR_NAMES if self.expr_probs is None else expr_names(self.expr_probs.shape[-1])

    @property
    def expr_names(self) -> list[str] | None:
        return None if self.expr is None else [self.expr_classes[int(k)] for k in self.expr]

    def va_spread(self) -> np.ndarray | None:
        """(N, 2) standard deviation of each VA bin distribution, in VA units (for plot bands)."""
        if self.va_probs is None:
            return None
        centres = VA_BIN_CENTRES.astype(np.float64)
        var = (self.va_probs * (centres - self.va[..., None]) ** 2).sum(-1)
        return np.sqrt(np.clip(var, 0.0, None))

    def take(self, index: np.ndarray | Sequence[int] | slice) -> "FramePredictions":
        """The predictions of the selected frames (any numpy index on the frame axis)."""
        if not isinstance(index, slice):
            index = np.asarray(index)
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                changes[f.name] = value[index]
        if self.uncertainty is not None:
            changes["uncertainty"] = {t: u.take(index) for t, u in self.uncertainty.items()}
        return replace(self, **changes)

    @classmethod
    def concatenate(cls, parts: Sequence["FramePredictions"]) -> "FramePredictions":
        """Join predictions of consecutive chunks (same models) along the frame axis."""
        if not parts:
            raise ValueError("FramePredictions.concatenate: nothing to join")
        first = parts[0]
        changes: dict[str, Any] = {}
        for f in fields(first):
            if isinstance(getattr(first, f.name), np.ndarray):
                changes[f.name] = np.concatenate([getattr(p, f.name) for p in parts])
        if first.uncertainty is not None:
            def joined(task: str, kind: str) -> np.ndarray | None:
                if getattr(first.uncertainty[task], kind) is None:
                    return None
                return np.concatenate([getattr(p.uncertainty[task], kind) for p in parts])

            changes["uncertainty"] = {t: TaskUncertainty(*(joined(t, k) for k in UNCERTAINTY_KINDS))
                                      for t in first.uncertainty}
        return replace(first, **changes)

    # ------------------------------------------------------------------ tables and JSON

    def _uncertainty_columns(self, task: str, names: Sequence[str], squeeze: bool) -> dict[str, np.ndarray]:
        u = self.uncertainty[task]
        kinds = [("uncertainty", u.total)]
        if self.is_ensemble:
            kinds += [("aleatoric", u.aleatoric), ("epistemic", u.epistemic)]
        cols = {}
        for suffix, values in kinds:
            if squeeze:
                cols[f"{names[0]}_{suffix}"] = values
            else:
                for k, name in enumerate(names):
                    cols[f"{name}_{suffix}"] = values[:, k]
        return cols

    def to_dataframe(self) -> pd.DataFrame:
        """One row per frame; columns named by AU and expression names.

        AU: `AU1_prob`, `AU1` (0/1), `AU1_uncertainty`; EXPR: `Neutral_prob` ..., `expression`
        (index), `expression_name`, `expression_uncertainty`; VA: `valence`, `arousal`,
        `valence_uncertainty`, `arousal_uncertainty`, `valence_bin00_prob` ... `arousal_bin19_prob`;
        ensembles add `*_aleatoric` and `*_epistemic` beside every `*_uncertainty` (which is
        the total); landmarks `landmark00_x`, `landmark00_y`, ... (crop-normalized).
        """
        cols: dict[str, Any] = {}
        if self.au_probs is not None:
            for k, name in enumerate(AU_NAMES):
                cols[f"{name}_prob"] = self.au_probs[:, k]
            for k, name in enumerate(AU_NAMES):
                cols[name] = self.au[:, k]
            cols.update(self._uncertainty_columns("AU", AU_NAMES, squeeze=False))
        if self.expr_probs is not None:
            for k, name in enumerate(self.expr_classes):
                cols[f"{name}_prob"] = self.expr_probs[:, k]
            cols["expression"] = self.expr
            cols["expression_name"] = np.asarray(self.expr_classes, dtype=object)[self.expr]
            cols.update(self._uncertainty_columns("EXPR", ["expression"], squeeze=True))
        if self.va_probs is not None:
            for k, name in enumerate(VA_NAMES):
                cols[name] = self.va[:, k]
            cols.update(self._uncertainty_columns("VA", VA_NAMES, squeeze=False))
            for k, name in enumerate(VA_NAMES):
                for b in range(NUM_VA_BINS):
                    cols[f"{name}_bin{b:02d}_prob"] = self.va_probs[:, k, b]
        if self.landmarks is not None:
            for j in range(NUM_LANDMARKS):
                cols[f"landmark{j:02d}_x"] = self.landmarks[:, j, 0]
                cols[f"landmark{j:02d}_y"] = self.landmarks[:, j, 1]
        return pd.DataFrame(cols, index=pd.RangeIndex(len(self)))

    def frame_dict(self, i: int) -> dict[str, Any]:
        """Every number of frame `i` as plain Python types, nested by task (for JSON)."""
        def unc(task: str, k: int | None = None) -> dict[str, float]:
            u = self.uncertainty[task]
            pick = (lambda a: float(a[i])) if k is None else (lambda a: float(a[i, k]))
            out = {"total": pick(u.total), "aleatoric": pick(u.aleatoric)}
            if u.epistemic is not None:
                out["epistemic"] = pick(u.epistemic)
            return out

        out: dict[str, Any] = {"num_models": self.num_models}
        if self.au_probs is not None:
            out["AU"] = {name: {"prob": float(self.au_probs[i, k]), "active": int(self.au[i, k]),
                                "uncertainty": unc("AU", k)} for k, name in enumerate(AU_NAMES)}
        if self.expr_probs is not None:
            out["EXPR"] = {"class": int(self.expr[i]), "name": self.expr_classes[int(self.expr[i])],
                           "probs": {name: float(self.expr_probs[i, k]) for k, name in enumerate(self.expr_classes)},
                           "uncertainty": unc("EXPR")}
        if self.va_probs is not None:
            out["VA"] = {name: {"value": float(self.va[i, k]), "bin_probs": self.va_probs[i, k].astype(float).tolist(),
                                "uncertainty": unc("VA", k)} for k, name in enumerate(VA_NAMES)}
        if self.landmarks is not None:
            out["landmarks"] = self.landmarks[i].astype(float).tolist()
        return out
