"""Conformal thresholds of an ensemble's per-frame distributions, the regions they give, and
their measured coverage: pure numpy on arrays (the file and the data pipeline are elsewhere).

Probabilities are those of emenet.inference.FramePredictions: EXPR (n, 7), AU (n, 12)
P(active), VA (n, 2, 20); labels are emenet.evaluation.metrics' (EXPR (n,) with -1, AU (n, 12) with -1,
VA (n, 2) with -5 for unannotated).

    >>> rng = np.random.default_rng(0)
    >>> probs = {"EXPR": rng.dirichlet(np.ones(7), 500)}
    >>> labels = {"EXPR": np.array([rng.choice(7, p=p) for p in probs["EXPR"]])}
    >>> t = fit_thresholds(probs, labels, 0.9)
    >>> 0.85 < measure(probs, labels, t, 0.9)["EXPR"]["coverage"] <= 1.0
    True
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from emenet.conformal.scores import (conformal_quantile, cqr_base_interval, cqr_interval, cqr_scores, lac_scores,
                                     lac_sets, raps_scores, raps_sets)
from emenet.tasks import AU_NAMES, VA_NAMES

EXPR_METHODS: tuple[str, ...] = ("aps", "raps")


@dataclass(frozen=True)
class SetMethod:
    """How EXPR sets are formed: APS, or RAPS with penalty `raps_lambda` beyond rank `raps_k`."""

    expr_method: str = "aps"
    raps_lambda: float = 0.01
    raps_k: int = 1

    def __post_init__(self) -> None:
        if self.expr_method not in EXPR_METHODS:
            raise ValueError(f"unknown EXPR set method {self.expr_method!r}; choose one of {list(EXPR_METHODS)}")
        if self.raps_lambda < 0 or self.raps_k < 0:
            raise ValueError(f"RAPS needs lambda >= 0 and k >= 0, got {self.raps_lambda}, {self.raps_k}")

    @property
    def lam(self) -> float:
        return self.raps_lambda if self.expr_method == "raps" else 0.0

    @property
    def k_reg(self) -> int:
        return self.raps_k if self.expr_method == "raps" else 0


@dataclass(frozen=True)
class AbstainRule:
    """When a frame's answer is too vague to act on: an `abstain_<task>` flag.

    EXPR: more than `expr_max_set_size` expressions possible (default 2: "happy or surprised" is
    still an answer, three are not). AU: more than `au_max_undecided` of the 12 AUs undecided
    ({0, 1}) or empty. VA: valence's or arousal's interval wider than `va_max_width` (default 1.0,
    half the label range [-1, 1]).
    """

    expr_max_set_size: int = 2
    au_max_undecided: int = 3
    va_max_width: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _annotated_expr(labels: np.ndarray) -> np.ndarray:
    return np.asarray(labels).reshape(-1) >= 0


def _va_valid(labels: np.ndarray, d: int) -> np.ndarray:
    y = np.asarray(labels, dtype=np.float64)[:, d]
    return np.isfinite(y) & (y >= -1.0) & (y <= 1.0)


def fit_thresholds(probs: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], coverage: float,
                   method: SetMethod = SetMethod()) -> dict[str, Any]:
    """Conformal thresholds per task from calibration frames: {"EXPR": q, "AU": [q per AU] (None
    for an AU with no annotated frame), "valence": q, "arousal": q}, for the tasks in `labels`.
    A threshold too few frames give (see conformal_quantile) is None: sets of every value."""
    out = _fit_thresholds(probs, labels, coverage, method)
    return {k: ([None if q is None or not np.isfinite(q) else q for q in v] if isinstance(v, list)
                else (None if not np.isfinite(v) else v)) for k, v in out.items()}


def _fit_thresholds(probs: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], coverage: float,
                    method: SetMethod) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "EXPR" in labels and "EXPR" in probs:
        y = np.asarray(labels["EXPR"]).reshape(-1)
        ok = _annotated_expr(y)
        if ok.any():
            out["EXPR"] = conformal_quantile(raps_scores(probs["EXPR"][ok], y[ok], method.lam, method.k_reg), coverage)
    if "AU" in labels and "AU" in probs:
        y, p = np.asarray(labels["AU"]), np.asarray(probs["AU"])
        out["AU"] = [conformal_quantile(lac_scores(p[y[:, j] >= 0, j], y[y[:, j] >= 0, j]), coverage)
                     if (y[:, j] >= 0).any() else None for j in range(len(AU_NAMES))]
    if "VA" in labels and "VA" in probs:
        lo, hi = cqr_base_interval(probs["VA"], coverage)  # (n, 2) each
        for d, name in enumerate(VA_NAMES):
            ok = _va_valid(labels["VA"], d)
            if ok.any():
                y = np.asarray(labels["VA"], dtype=np.float64)[ok, d]
                out[name] = conformal_quantile(cqr_scores(lo[ok, d], hi[ok, d], y), coverage)
    return out


@dataclass
class Regions:
    """Per-frame conformal regions: EXPR sets (n, 7) bool; AU (n, 12) whether 0 / 1 is in each set;
    VA lo, hi (n, 2). A task without a threshold is None."""

    expr: np.ndarray | None = None
    au_has0: np.ndarray | None = None
    au_has1: np.ndarray | None = None
    va_lo: np.ndarray | None = None
    va_hi: np.ndarray | None = None


def _finite(q: Any) -> float:
    return np.inf if q is None else float(q)


def predict_regions(probs: Mapping[str, np.ndarray], thresholds: Mapping[str, Any], coverage: float,
                    method: SetMethod = SetMethod()) -> Regions:
    """The sets and intervals of new frames (batched over frames). An AU without a threshold
    (never annotated in calibration) gets the uninformative set {0, 1}; a VA dimension without
    one the whole range [-1, 1]."""
    r = Regions()
    if "EXPR" in probs and probs["EXPR"] is not None and "EXPR" in thresholds:
        r.expr = raps_sets(probs["EXPR"], _finite(thresholds["EXPR"]), method.lam, method.k_reg)
    if "AU" in probs and probs["AU"] is not None and "AU" in thresholds:
        q = np.array([_finite(v) for v in thresholds["AU"]])
        r.au_has0, r.au_has1 = lac_sets(probs["AU"], q[None, :])
    if "VA" in probs and probs["VA"] is not None and any(n in thresholds for n in VA_NAMES):
        lo, hi = cqr_base_interval(probs["VA"], coverage)
        r.va_lo, r.va_hi = np.empty_like(lo), np.empty_like(hi)
        for d, name in enumerate(VA_NAMES):
            r.va_lo[:, d], r.va_hi[:, d] = cqr_interval(lo[:, d], hi[:, d], _finite(thresholds.get(name)))
    return r


def abstain_flags(regions: Regions, rule: AbstainRule) -> dict[str, np.ndarray]:
    """`abstain_<task>` per frame for the tasks with regions (see AbstainRule)."""
    out = {}
    if regions.expr is not None:
        out["abstain_EXPR"] = regions.expr.sum(axis=1) > rule.expr_max_set_size
    if regions.au_has0 is not None:
        undecided = regions.au_has0 == regions.au_has1  # {0, 1} or empty
        out["abstain_AU"] = undecided.sum(axis=1) > rule.au_max_undecided
    if regions.va_lo is not None:
        out["abstain_VA"] = ((regions.va_hi - regions.va_lo) > rule.va_max_width).any(axis=1)
    return out


def measure(probs: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], thresholds: Mapping[str, Any],
            coverage: float, method: SetMethod = SetMethod()) -> dict[str, dict[str, float]]:
    """Measured coverage and size on annotated frames: EXPR coverage and mean set size; AU
    coverage over all annotated AU entries, per AU, and the mean number of undecided AUs;
    valence/arousal coverage and mean interval width. `frames`: how many were scored."""
    r = predict_regions({t: probs[t] for t in labels if t in probs}, thresholds, coverage, method)
    out: dict[str, dict[str, float]] = {}
    if r.expr is not None:
        y = np.asarray(labels["EXPR"]).reshape(-1).astype(int)
        ok = _annotated_expr(y)
        if ok.any():
            out["EXPR"] = {"coverage": float(r.expr[ok, y[ok]].mean()), "mean_set_size": float(r.expr[ok].sum(1).mean()),
                           "frames": int(ok.sum())}
    if r.au_has0 is not None:
        y = np.asarray(labels["AU"])
        ok = y >= 0
        if ok.any():
            covered = np.where(y == 1, r.au_has1, r.au_has0)
            has = ok.any(axis=1)
            out["AU"] = {"coverage": float(covered[ok].mean()),
                         "mean_undecided": float((r.au_has0 == r.au_has1)[has].sum(axis=1).mean()),
                         "frames": int(has.sum()),
                         **{f"coverage_{n}": float(covered[ok[:, j], j].mean()) if ok[:, j].any() else float("nan")
                            for j, n in enumerate(AU_NAMES)}}
    if r.va_lo is not None:
        for d, name in enumerate(VA_NAMES):
            ok = _va_valid(labels["VA"], d)
            if ok.any():
                y = np.asarray(labels["VA"], dtype=np.float64)[ok, d]
                lo, hi = r.va_lo[ok, d], r.va_hi[ok, d]
                out[name] = {"coverage": float(((y >= lo - 1e-9) & (y <= hi + 1e-9)).mean()),
                             "mean_width": float((hi - lo).mean()), "frames": int(ok.sum())}
    return out
