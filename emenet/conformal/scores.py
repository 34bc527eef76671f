"""Split-conformal math: conformity scores, their finite-sample quantile, and the sets they give.

With n calibration scores s_i of exchangeable units and a new unit's score s, the
ceil((n + 1)(1 - alpha))-th smallest s_i, q, satisfies P(s <= q) >= 1 - alpha (Vovk et al.;
Angelopoulos and Bates, "A gentle introduction to conformal prediction", 2021). Each method
below maps a predicted distribution and a threshold q to a set that contains {y : score(y) <= q},
so the true label is in it with at least that probability.

- EXPR, APS (Romano, Sesia, Candes 2020): score = the probability mass of the classes at least
  as likely as the true one (the cumulative sum down to it); the set is {y : score(y) <= q} plus
  the most likely class, so it is never empty (MAPIE's `include_last_label=False`). Sets are
  deterministic; the guarantee holds with a slight over-coverage, which tests measure.
- EXPR, RAPS (Angelopoulos et al. 2021): APS plus lambda * max(0, rank - k_reg), which
  penalises long tails of unlikely classes and gives smaller sets.
- AU, LAC (Sadinle et al. 2019), per AU: score = 1 - p(true value); the set is {0}, {1}, {0, 1}
  (or, rarely, empty) as each value's probability reaches 1 - q.
- Valence/arousal, CQR (Romano, Patterson, Candes 2019): the alpha/2 and 1 - alpha/2 quantiles
  of the predicted 20-bin distribution (its mass spread evenly over each bin of the 21 edges
  linspace(-1, 1, 21)), widened (or narrowed) by q, score = max(lo - y, y - hi).

    >>> conformal_quantile([0.1, 0.2, 0.3, 0.4], 0.5)  # ceil(5 * 0.5) = 3rd smallest
    0.3
    >>> aps_sets(np.array([[0.6, 0.3, 0.1]]), 0.95).astype(int)
    array([[1, 1, 0]])
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from emenet.tasks import NUM_VA_BINS

# Edges of the VA bins: the 21 equal edges of the original's `cce` target (tasks.VA_BIN_EDGES).
VA_EDGES = np.linspace(-1.0, 1.0, NUM_VA_BINS + 1)
# Tolerance of the set rules' comparisons: cumulative sums of float32 probabilities that equal the
# threshold mathematically must still include the class.
EPS = 1e-9


def check_coverage(coverage: float) -> float:
    """The target coverage 1 - alpha, strictly between 0 and 1."""
    if not 0.0 < float(coverage) < 1.0:
        raise ValueError(f"coverage must be strictly between 0 and 1, got {coverage}")
    return float(coverage)


def conformal_quantile(scores: Any, coverage: float) -> float:
    """The ceil((n + 1) * coverage)-th smallest score; +inf when n is too small for that coverage."""
    s = np.sort(np.asarray(scores, dtype=np.float64).reshape(-1))
    if s.size == 0 or not np.isfinite(s).all():
        raise ValueError(f"conformal_quantile: expected finite scores, got {s.size} value(s)")
    rank = math.ceil((s.size + 1) * check_coverage(coverage) - 1e-9)
    return float(s[rank - 1]) if rank <= s.size else math.inf


def _sorted_cumsum(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(classes by decreasing probability, their cumulative sums), ties by class index."""
    order = np.argsort(-probs, axis=1, kind="stable")
    return order, np.cumsum(np.take_along_axis(probs, order, axis=1), axis=1)


def raps_scores(probs: Any, labels: Any, lam: float = 0.0, k_reg: int = 0, u: Any = None) -> np.ndarray:
    """RAPS conformity scores (APS when lam = 0) of the true `labels` (n,) under `probs` (n, K).

    `u` (n,), uniform in [0, 1], gives the randomized score (cumulative sum minus u * p(true)),
    whose sets are not conservative; without it the score includes all of p(true).
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).astype(int).reshape(-1)
    order, cum = _sorted_cumsum(p)
    rank = np.argmax(order == y[:, None], axis=1)  # 0-based position of the true class
    score = cum[np.arange(len(y)), rank] + lam * np.maximum(0, rank + 1 - k_reg)
    if u is not None:
        score = score - np.asarray(u, dtype=np.float64).reshape(-1) * p[np.arange(len(y)), y]
    return score


def aps_scores(probs: Any, labels: Any, u: Any = None) -> np.ndarray:
    """APS conformity scores (see raps_scores)."""
    return raps_scores(probs, labels, 0.0, 0, u)


def raps_sets(probs: Any, q: float, lam: float = 0.0, k_reg: int = 0) -> np.ndarray:
    """(n, K) boolean sets: the classes whose (regularised) cumulative sum, in order of decreasing
    probability, is at most q, and always the most likely class."""
    p = np.asarray(probs, dtype=np.float64)
    order, cum = _sorted_cumsum(p)
    ranks = np.arange(1, p.shape[1] + 1)
    reg = cum + lam * np.maximum(0, ranks - k_reg)[None, :]  # increasing along the sorted axis
    sorted_in = reg <= q + EPS
    sorted_in[:, 0] = True
    sets = np.zeros_like(sorted_in)
    np.put_along_axis(sets, order, sorted_in, axis=1)
    return sets


def aps_sets(probs: Any, q: float) -> np.ndarray:
    """APS sets (see raps_sets)."""
    return raps_sets(probs, q)


def lac_scores(p_active: Any, labels: Any) -> np.ndarray:
    """Binary LAC scores 1 - p(true value) of 0/1 `labels` under P(active) = `p_active` (same shape)."""
    p = np.asarray(p_active, dtype=np.float64)
    y = np.asarray(labels)
    return 1.0 - np.where(y == 1, p, 1.0 - p)


def lac_sets(p_active: Any, q: Any) -> tuple[np.ndarray, np.ndarray]:
    """(0 in set, 1 in set) for P(active) `p_active` (..., units) and per-unit thresholds `q`."""
    p = np.asarray(p_active, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    return 1.0 - (1.0 - p) <= q + EPS, 1.0 - p <= q + EPS


def bin_quantiles(probs: Any, levels: Any) -> np.ndarray:
    """Quantiles at `levels` (L,) of 20-bin distributions (..., 20) -> (..., L).

    The CDF rises linearly across each bin [edge_k, edge_k+1] of linspace(-1, 1, 21) by that
    bin's probability: the histogram reading of the distribution.
    """
    p = np.asarray(probs, dtype=np.float64)
    levels = np.asarray(levels, dtype=np.float64).reshape(-1)
    flat = p.reshape(-1, p.shape[-1])  # (N, 20)
    flat = flat / flat.sum(axis=1, keepdims=True)
    cdf = np.concatenate([np.zeros((flat.shape[0], 1)), np.cumsum(flat, axis=1)], axis=1)  # (N, 21)
    cdf[:, -1] = 1.0
    out = np.empty((flat.shape[0], levels.size))
    width = VA_EDGES[1] - VA_EDGES[0]
    for j, tau in enumerate(levels):  # L is 2 or 3: a loop over levels, not frames
        k = np.argmax((cdf[:, 1:] >= tau) & (flat > 0), axis=1)  # the first bin with mass where the CDF reaches tau
        rows = np.arange(flat.shape[0])
        mass = flat[rows, k]
        frac = np.where(mass > 0, (tau - cdf[rows, k]) / np.where(mass > 0, mass, 1.0), 0.0)
        out[:, j] = VA_EDGES[k] + np.clip(frac, 0.0, 1.0) * width
    return out.reshape(*p.shape[:-1], levels.size)


def cqr_base_interval(probs: Any, coverage: float) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi): the (1 - coverage)/2 and (1 + coverage)/2 quantiles of 20-bin distributions."""
    alpha = 1.0 - check_coverage(coverage)
    q = bin_quantiles(probs, [alpha / 2, 1 - alpha / 2])
    return q[..., 0], q[..., 1]


def cqr_scores(lo: Any, hi: Any, y: Any) -> np.ndarray:
    """CQR conformity scores max(lo - y, y - hi): negative inside the interval."""
    lo, hi, y = (np.asarray(a, dtype=np.float64) for a in (lo, hi, y))
    return np.maximum(lo - y, y - hi)


def cqr_interval(lo: Any, hi: Any, q: float, clip: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """[lo - q, hi + q], clipped to the label range [-1, 1] when `clip` (which never drops a label)."""
    lo, hi = np.asarray(lo, dtype=np.float64) - q, np.asarray(hi, dtype=np.float64) + q
    if clip:
        lo, hi = np.clip(lo, -1.0, 1.0), np.clip(hi, -1.0, 1.0)
    return lo, np.maximum(lo, hi)
