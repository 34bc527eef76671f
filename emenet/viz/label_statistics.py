"""What a set of labels looks like: how often each AU is active, and how AUs go with expressions.

The original drew these two pictures when it built its annotation tables (`--vis`): EMENet draws
them from the dataset index (`emenet index --vis DIR`) and from an ensemble's soft labels
(`create_new_annotations.py --vis DIR`). Both work on probabilities, so hard labels (0/1 AUs,
one-hot expressions) and an ensemble's mean probabilities go through the same code:

- AU frequency: per AU, the mean probability of being active over the frames annotated for it;
- task affinity: P(AU active | expression k) = sum_n p(k | n) p(AU | n) / sum_n p(k | n), over
  frames that carry both an expression and that AU.

    >>> au_frequency(np.array([[1, 0], [1, -1]], dtype=float)).tolist()  # -1: unannotated
    [1.0, 0.0]
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from emenet.io_utils import atomic_path
from emenet.tasks import AU_NAMES, expr_names

BAR_COLOUR = "#1976d2"


def au_frequency(au: np.ndarray) -> np.ndarray:
    """(N, 12) AU probabilities or 0/1 labels (negative = unannotated) -> (12,) mean active rate (NaN if none)."""
    au = np.asarray(au, dtype=np.float64)
    valid = au >= 0
    counts = valid.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.where(valid, au, 0.0).sum(axis=0) / counts, np.nan)


def one_hot_expressions(expr: np.ndarray, num_classes: int) -> np.ndarray:
    """(N,) class labels (-1 = unannotated) -> (N, K) one-hot rows (all zero when unannotated)."""
    expr = np.asarray(expr, dtype=np.int64)
    out = np.zeros((len(expr), num_classes))
    rows = np.flatnonzero(expr >= 0)
    out[rows, expr[rows]] = 1.0
    return out


def task_affinity(au: np.ndarray, expr_probs: np.ndarray) -> np.ndarray:
    """(N, 12) AU probabilities (negative = unannotated) and (N, K) expression probabilities (all-zero
    rows = unannotated) -> (K, 12) P(AU active | expression), NaN where no frame supports it.

    >>> task_affinity(np.array([[1.0], [0.0], [1.0]]), np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])).ravel().tolist()
    [0.5, 1.0]
    """
    au = np.asarray(au, dtype=np.float64)
    expr_probs = np.asarray(expr_probs, dtype=np.float64)
    valid = (au >= 0).astype(np.float64)  # (N, 12)
    weight = expr_probs.T @ valid  # (K, 12): expression mass over frames annotated for each AU
    mass = expr_probs.T @ (np.where(au >= 0, au, 0.0))  # (K, 12)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, mass / weight, np.nan)


def plot_au_frequency(frequencies: dict[str, np.ndarray], title: str = "AU frequency") -> Figure:
    """Bars of each AU's active rate, one group per entry of `frequencies` (e.g. train / validation)."""
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(AU_NAMES))
    width = 0.8 / max(1, len(frequencies))
    for i, (label, values) in enumerate(frequencies.items()):
        ax.bar(x + (i - (len(frequencies) - 1) / 2) * width, np.nan_to_num(values), width=width, label=label)
    ax.set_xticks(x, AU_NAMES, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction of annotated frames active")
    ax.set_title(title, fontsize=10)
    if len(frequencies) > 1:
        ax.legend(fontsize=8)
    return fig


def plot_task_affinity(affinity: np.ndarray, title: str = "P(AU active | expression)") -> Figure:
    """Heatmap of a (K, 12) task-affinity matrix, expressions as rows (7, or 8 with `Other`)."""
    classes = expr_names(affinity.shape[0])
    fig = Figure(figsize=(8, 0.45 * len(classes) + 1.6), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(affinity), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for (k, j), value in np.ndenumerate(affinity):
        if np.isfinite(value):
            ax.text(j, k, f"{value:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if value < 0.6 else "black")
    ax.set_xticks(np.arange(len(AU_NAMES)), AU_NAMES, fontsize=8)
    ax.set_yticks(np.arange(len(classes)), classes, fontsize=8)
    ax.set_title(title, fontsize=10)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Write a figure atomically (PNG, or whatever the suffix says)."""
    path = Path(path)
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png")
    return path
