"""Risk-coverage curves: the risk of the frames kept as the kept share grows.

    >>> fig = plot_risk_coverage({"ensemble total": {"EXPR error": (u, loss)}}, title="EXPR")  # doctest: +SKIP
    >>> fig.savefig("expr.png")  # doctest: +SKIP

One panel per curve (EXPR error, AU error, valence |error|, arousal |error|), one line per
method and uncertainty score; the dashed line is the oracle of the first entry (frames ordered
by their true loss), the lowest curve any score could give those predictions.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from emenet.evaluation.selective import sampled_curve


def plot_risk_coverage(curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]],
                       title: str | None = None) -> Figure:
    """`curves`: "<method> <score>" -> curve name -> (per-frame uncertainty, per-frame loss)."""
    if not curves:
        raise ValueError("plot_risk_coverage: expected at least one curve")
    names = list(next(iter(curves.values())))
    fig = Figure(figsize=(4.2 * len(names), 3.6))
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        for label, per_curve in curves.items():
            if name in per_curve:
                cov, risk = sampled_curve(*per_curve[name])
                ax.plot(cov, risk, lw=1.2, label=label)
        first = next(iter(curves.values()))[name]
        cov, risk = sampled_curve(first[1], first[1])
        ax.plot(cov, risk, color="black", ls="--", lw=1, label="oracle")
        ax.set_xlim(0, 1)
        ax.set_xlabel("coverage (share of frames kept)")
        ax.set_ylabel("risk")
        ax.set_title(name, fontsize=10)
    axes[-1].legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.82, wspace=0.3)
    return fig
