"""Reliability diagrams: per confidence bin, how often the prediction was right.

    >>> from emenet.evaluation.calibration import task_reliability
    >>> fig = plot_reliability(task_reliability("EXPR", probs, labels), title="ensemble")  # doctest: +SKIP
    >>> fig.savefig("reliability.png")  # doctest: +SKIP

Top row: the observed accuracy (for AUs, the frequency of an active AU) of each bin as a bar,
the gap to the bin's mean confidence in red, the diagonal of perfect calibration. Bottom row:
the share of samples per bin, so a large gap in a nearly empty bin is read as such.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from emenet.evaluation.calibration import ReliabilityBins

ACCURACY_COLOUR = "#1976d2"
GAP_COLOUR = "#d32f2f"


def _labels(name: str) -> tuple[str, str]:
    if name.startswith("AU"):
        return "predicted p(AU active)", "observed frequency"
    return "confidence (top class)", "accuracy"


def draw_reliability(ax: Axes, counts_ax: Axes, bins: ReliabilityBins, name: str) -> None:
    """One diagram on `ax` and its bin shares on `counts_ax`."""
    width = np.diff(bins.edges)
    left = bins.edges[:-1]
    filled = bins.counts > 0
    ax.bar(left[filled], bins.accuracy[filled], width=width[filled], align="edge", color=ACCURACY_COLOUR,
           edgecolor="white", alpha=0.85, label="observed")
    gap_bottom = np.minimum(bins.accuracy, bins.confidence)[filled]
    gap = np.abs(bins.accuracy - bins.confidence)[filled]
    ax.bar(left[filled], gap, bottom=gap_bottom, width=width[filled], align="edge", color=GAP_COLOUR, alpha=0.35,
           edgecolor=GAP_COLOUR, label="gap to confidence")
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(f"{name}\nECE {bins.ece:.3f}, n = {bins.total}", fontsize=10)
    xlabel, ylabel = _labels(name)
    ax.set_ylabel(ylabel)
    counts_ax.bar(left, bins.counts / max(bins.total, 1), width=width, align="edge", color="grey", edgecolor="white")
    counts_ax.set_xlim(0, 1)
    counts_ax.set_xlabel(xlabel)
    counts_ax.set_ylabel("share")


def plot_reliability(panels: Mapping[str, ReliabilityBins], title: str | None = None) -> Figure:
    """One column per entry of `panels` (e.g. EXPR, AU (pooled), valence, arousal)."""
    if not panels:
        raise ValueError("plot_reliability: expected at least one panel")
    n = len(panels)
    fig = Figure(figsize=(3.2 * n, 4.8))  # fixed margins: a layout engine costs seconds per save
    axes = fig.subplots(2, n, squeeze=False, gridspec_kw={"height_ratios": [3, 1]}, sharex="col")
    for k, (name, bins) in enumerate(panels.items()):
        draw_reliability(axes[0, k], axes[1, k], bins, name)
    axes[0, 0].legend(loc="upper left", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(left=0.6 / (3.2 * n), right=1 - 0.1 / (3.2 * n), top=0.82 if title else 0.88, bottom=0.11,
                        wspace=0.32, hspace=0.08)
    return fig
