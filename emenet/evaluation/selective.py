"""Selective prediction: how good are the frames the model is most certain about?

Keep the fraction `c` (the coverage) of frames with the lowest uncertainty and score only
those; the risk-coverage curve traces that score for every c. Its area (AURC, Geifman et al.,
"Bias-reduced uncertainty estimation for deep neural classifiers", ICLR 2019) is the mean risk
over the n coverages k/n; excess AURC subtracts the area of the oracle that orders frames by
their true loss, so 0 means the uncertainty ranks frames perfectly.

Frames with equal uncertainty are taken in random order; the curve is the *expectation* over
that order (computed exactly, not sampled), so a constant score gives the flat line at the
mean loss whatever the frames' order in the input.

    >>> aurc([0.1, 0.2, 0.3], [0.0, 0.0, 1.0])  # risks 0, 0, 1/3
    0.1111111111111111
    >>> excess_aurc([0.3, 0.2, 0.1], [0.0, 0.0, 1.0])  # worst ordering: 1, 1/2, 1/3 minus the oracle
    0.5
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emenet.evaluation.metrics import ccc
from emenet.tasks import TASKS, TaskKind, TaskSpec

# Coverages reported in tables (the fraction of frames kept).
REPORT_COVERAGES: tuple[float, ...] = (0.5, 0.8, 0.9)
# Points of the plotted curves.
CURVE_POINTS = 101


def _pair(uncertainty: Any, loss: Any) -> tuple[np.ndarray, np.ndarray]:
    u = np.asarray(uncertainty, dtype=np.float64).reshape(-1)
    y = np.asarray(loss, dtype=np.float64).reshape(-1)
    if u.shape != y.shape or u.size == 0:
        raise ValueError(f"selective: expected non-empty uncertainty and loss of one length, got {u.shape}, {y.shape}")
    if not (np.isfinite(u).all() and np.isfinite(y).all()):
        raise ValueError("selective: expected finite uncertainty and loss, got NaN or inf")
    return u, y


def risk_coverage_curve(uncertainty: Any, loss: Any) -> tuple[np.ndarray, np.ndarray]:
    """(coverage k/n, expected mean loss of the k most certain frames) for k = 1..n.

    Within a group of tied uncertainties the expected cumulative loss grows linearly by the
    group's mean loss per frame taken.
    """
    u, y = _pair(uncertainty, loss)
    n = u.size
    order = np.argsort(u, kind="stable")
    u, y = u[order], y[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])  # first position of each tie group
    ends = np.r_[starts[1:], n]
    cum = np.r_[0.0, np.cumsum(y)]  # cum[k]: loss of the first k frames in sorted order
    group = np.repeat(np.arange(starts.size), ends - starts)  # tie group of each position
    group_mean = (cum[ends] - cum[starts]) / (ends - starts)
    k = np.arange(1, n + 1)
    expected = cum[starts[group]] + (k - starts[group]) * group_mean[group]
    return k / n, expected / k


def aurc(uncertainty: Any, loss: Any) -> float:
    """Area under the risk-coverage curve: the mean of the n risks."""
    return float(risk_coverage_curve(uncertainty, loss)[1].mean())


def oracle_aurc(loss: Any) -> float:
    """AURC of the best possible ordering (by the loss itself)."""
    return aurc(loss, loss)


def excess_aurc(uncertainty: Any, loss: Any) -> float:
    """AURC minus the oracle's: the risk the uncertainty's ranking adds (>= 0)."""
    return aurc(uncertainty, loss) - oracle_aurc(loss)


def risk_at_coverage(uncertainty: Any, loss: Any, coverage: float) -> float:
    """Expected mean loss of the ceil(coverage * n) most certain frames."""
    cov, risk = risk_coverage_curve(uncertainty, loss)
    return float(risk[kept_count(cov.size, coverage) - 1])


def kept_count(n: int, coverage: float) -> int:
    """How many of n frames a coverage keeps: ceil(coverage * n), at least 1."""
    if not 0.0 < coverage <= 1.0:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    return max(1, min(n, math.ceil(coverage * n - 1e-9)))


def kept_mask(uncertainty: Any, coverage: float) -> np.ndarray:
    """Boolean mask of the ceil(coverage * n) most certain frames (ties by position), for scores
    that are not a mean over frames (F1, CCC)."""
    u = np.asarray(uncertainty, dtype=np.float64).reshape(-1)
    keep = np.zeros(u.size, dtype=bool)
    keep[np.argsort(u, kind="stable")[:kept_count(u.size, coverage)]] = True
    return keep


# --- per task -------------------------------------------------------------------------------------

def au_frame_error(pred: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames with an annotated AU, their share of wrong annotated AU decisions)."""
    valid = labels >= 0
    has = valid.any(axis=1)
    wrong = ((pred != labels) & valid).sum(axis=1)
    return has, wrong[has] / valid[has].sum(axis=1)


def _mean_f1(pred: np.ndarray, labels: np.ndarray) -> float:
    """Mean over AUs of binary F1 on annotated entries (AUs with no annotated entry left out)."""
    scores = []
    for j in range(labels.shape[1]):
        v = labels[:, j] >= 0
        if v.any():
            tp = np.sum((pred[v, j] == 1) & (labels[v, j] == 1))
            fp_fn = np.sum(pred[v, j] != labels[v, j])
            scores.append(2 * tp / (2 * tp + fp_fn) if tp + fp_fn else 0.0)
    return float(np.mean(scores)) if scores else float("nan")


def _curve_scores(prefix: str, uncertainty: np.ndarray, loss: np.ndarray,
                  coverages: Sequence[float]) -> dict[str, float]:
    cov, risk = risk_coverage_curve(uncertainty, loss)
    area, oracle = float(risk.mean()), oracle_aurc(loss)
    out = {f"{prefix}_aurc": area, f"{prefix}_eaurc": area - oracle}
    for c in coverages:
        out[f"{prefix}_at{round(100 * c)}"] = float(risk[kept_count(cov.size, c) - 1])
    return out


@dataclass(frozen=True)
class _Curve:
    """One risk-coverage curve of a task: its score prefix and plot title, per-frame
    (uncertainty, loss), and optionally a score of the frames kept at each coverage."""

    key: str  # EXPR_error, AU_error, valence_abserr, ...
    title: str  # EXPR error, AU error, valence |error|, ...
    uncertainty: np.ndarray
    loss: np.ndarray
    kept_score: tuple[str, Callable[[np.ndarray], float]] | None = None  # (AU_f1, score of a kept mask)


def _multiclass_curves(spec: TaskSpec, pred: np.ndarray, labels: np.ndarray, u: np.ndarray) -> list[_Curve]:
    valid = labels >= 0
    return [_Curve(f"{spec.name}_error", f"{spec.name} error", u[valid], (pred[valid] != labels[valid]).astype(float))]


def _multilabel_curves(spec: TaskSpec, pred: np.ndarray, labels: np.ndarray, u: np.ndarray) -> list[_Curve]:
    has, error = au_frame_error(pred, labels)
    p, y = pred[has], labels[has]
    return [_Curve(f"{spec.name}_error", f"{spec.name} error", u[has], error,
                   (f"{spec.name}_f1", lambda keep: _mean_f1(p[keep], y[keep])))]


def _regression_curves(spec: TaskSpec, pred: np.ndarray, labels: np.ndarray, u: np.ndarray) -> list[_Curve]:
    curves = []
    for d, name in enumerate(spec.names):
        valid = np.isfinite(labels[:, d]) & (labels[:, d] >= -1.0)
        p, y = pred[valid, d], labels[valid, d]
        curves.append(_Curve(f"{name}_abserr", f"{name} |error|", u[valid, d] if u.ndim == 2 else u[valid],
                             np.abs(p - y), (f"{name}_ccc", lambda keep, p=p, y=y: ccc(p[keep], y[keep]))))
    return curves


# Per kind: the task's curves, and (score prefixes, kept-frame scores) for the report's columns.
_KIND_CURVES = {TaskKind.MULTICLASS: _multiclass_curves, TaskKind.MULTILABEL: _multilabel_curves,
                TaskKind.BINNED_REGRESSION: _regression_curves}
_KIND_COLUMNS = {TaskKind.MULTICLASS: lambda spec: ([f"{spec.name}_error"], []),
                 TaskKind.MULTILABEL: lambda spec: ([f"{spec.name}_error"], [f"{spec.name}_f1"]),
                 TaskKind.BINNED_REGRESSION: lambda spec: ([f"{d}_abserr" for d in spec.names],
                                                          [f"{d}_ccc" for d in spec.names])}


def _task_curves(task: str, pred: Any, labels: Any, uncertainty: Any) -> list[_Curve]:
    spec = TASKS.get(task)
    if spec is None or spec.kind not in _KIND_CURVES:
        raise ValueError(f"unknown task {task!r}; selective scores exist for AU, EXPR and VA")
    pred, labels, uncertainty = np.asarray(pred), np.asarray(labels), np.asarray(uncertainty, dtype=np.float64)
    return _KIND_CURVES[spec.kind](spec, pred, labels, uncertainty)


def selective_columns(task: str) -> tuple[list[str], list[str]]:
    """(curve score prefixes, kept-frame score names) of a task: EXPR (["EXPR_error"], []),
    AU (["AU_error"], ["AU_f1"]), VA (["valence_abserr", "arousal_abserr"], ["valence_ccc", "arousal_ccc"])."""
    return _KIND_COLUMNS[TASKS[task].kind](TASKS[task])


def task_selective_scores(task: str, pred: np.ndarray, labels: np.ndarray, uncertainty: np.ndarray,
                          coverages: Sequence[float] = REPORT_COVERAGES) -> dict[str, float]:
    """Selective-prediction scores of one task on annotated frames.

    `pred` / `labels` as emenet.evaluation.metrics takes them (AU (n, 12) 0/1 with -1 unannotated, EXPR
    (n,), VA (n, 2)); `uncertainty` (n,) per frame, or (n, 2) for VA (one per dimension).
    Keys: EXPR_error_*, AU_error_* and AU_f1_at<c> (mean F1 of the kept frames),
    <valence|arousal>_abserr_* and <valence|arousal>_ccc_at<c>; * is aurc, eaurc, at<c>.
    """
    out: dict[str, float] = {}
    for curve in _task_curves(task, pred, labels, uncertainty):
        out.update(_curve_scores(curve.key, curve.uncertainty, curve.loss, coverages))
        if curve.kept_score is not None:
            name, score = curve.kept_score
            for c in coverages:
                out[f"{name}_at{round(100 * c)}"] = score(kept_mask(curve.uncertainty, c))
    return out


def task_losses(task: str, pred: np.ndarray, labels: np.ndarray, uncertainty: np.ndarray
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-frame (uncertainty, loss) of each curve of a task: EXPR error, AU error, valence and
    arousal absolute error (the losses whose risk-coverage curves are plotted)."""
    return {curve.title: (curve.uncertainty, curve.loss) for curve in _task_curves(task, pred, labels, uncertainty)}


def sampled_curve(uncertainty: np.ndarray, loss: np.ndarray, points: int = CURVE_POINTS
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The risk-coverage curve at `points` evenly spaced coverages (for plots and tables)."""
    cov, risk = risk_coverage_curve(uncertainty, loss)
    grid = np.linspace(1.0 / cov.size, 1.0, min(points, cov.size))
    return grid, risk[np.clip(np.ceil(grid * cov.size - 1e-9).astype(int) - 1, 0, cov.size - 1)]


def curves_table(curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]) -> list[dict[str, Any]]:
    """Long rows (score, curve, coverage, risk) of sampled curves: score -> curve name -> (u, loss)."""
    rows = []
    for score, per_curve in curves.items():
        for name, (u, loss) in per_curve.items():
            for c, r in zip(*sampled_curve(u, loss)):
                rows.append({"score": score, "curve": name, "coverage": float(c), "risk": float(r)})
    return rows
