"""A video's predictions over time: valence and arousal with bands, uncertainty, expressions, AUs.

One block of panels per face track, stacked, on one time axis.

    >>> fig = plot_timeline(result)  # result: VideoPrediction or MultiTrackPrediction  # doctest: +SKIP
    >>> fig.savefig("timeline.png")  # doctest: +SKIP

Bands around valence and arousal are +-1 standard deviation of the predicted 20-bin
distribution (in VA units), or, with a conformal calibration (`conformal`), the conformal
intervals at its coverage; then the expression ribbon also carries the size of the expression
set (white steps, 1 to 7). The uncertainty panel shows the normalized entropies. Frames
without a face are shaded grey; their values are carried from the nearest earlier face frame.
"""
from __future__ import annotations

import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure, SubFigure
from matplotlib.patches import Patch

from emenet.conformal.apply import ConformalSettings, probs_from_predictions
from emenet.viz.drawing import ALEATORIC_COLOUR, EPISTEMIC_COLOUR, PROB_COLOUR, track_colour
from emenet.video.predict import MultiTrackPrediction, VideoPrediction
from emenet.tasks import AU_NAMES

# One colour per expression (Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise, Other).
EXPR_COLOURS = ("#9e9e9e", "#d32f2f", "#689f38", "#7b1fa2", "#fbc02d", "#1976d2", "#f57c00", "#5d4037")


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) index runs where `mask` is True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[::2], edges[1::2]))


PANEL_RATIOS = {"valence": 2, "arousal": 2, "uncertainty": 1.6, "expression": 0.5, "au": 2.6}


def _panels(result: VideoPrediction) -> list[str]:
    preds = result.face_predictions
    panels = ["valence", "arousal"] if preds.va is not None else []
    panels.append("uncertainty")
    if preds.expr is not None:
        panels.append("expression")
    if preds.au is not None:
        panels.append("au")
    return panels


def plot_timeline(result: VideoPrediction | MultiTrackPrediction, title: str | None = None,
                  conformal: ConformalSettings | None = None) -> Figure:
    """The figure described in the module docstring; one column per video frame, one block per track."""
    tracks = result.predictions if isinstance(result, MultiTrackPrediction) else [result]
    heights = [0.8 * sum(PANEL_RATIOS[p] for p in _panels(t)) + (0.35 if len(tracks) > 1 else 0.0) for t in tracks]
    fig = Figure(figsize=(12, 1.0 + sum(heights)), layout="constrained")
    if len(tracks) == 1:
        _draw_track(fig, tracks[0], label=None, conformal=conformal)
    else:
        for sub, track in zip(np.atleast_1d(fig.subfigures(len(tracks), 1, height_ratios=heights)), tracks):
            _draw_track(sub, track, label=f"track {track.track_id}", conformal=conformal)
    first = tracks[0]
    n_models = first.face_predictions.num_models
    names = ", ".join(f"{t.track_id}: face in {int(t.face_found.sum())}" for t in tracks)
    fig.suptitle(title or f"{first.meta.path}: {first.num_frames} frames; "
                 + (f"face in {int(first.face_found.sum())}" if len(tracks) == 1 else f"tracks {names}")
                 + f"; {n_models} model{'s' if n_models > 1 else ''} (grey: no face)", fontsize=9)
    return fig


def _draw_track(fig: Figure | SubFigure, result: VideoPrediction, label: str | None,
                conformal: ConformalSettings | None = None) -> None:
    """The panels of one track into `fig` (a figure or a subfigure)."""
    preds = result.frame_predictions
    regions = None if conformal is None else conformal.regions(probs_from_predictions(preds))
    t = result.times
    dt = float(np.median(np.diff(t))) if len(t) > 1 else 1.0 / max(result.meta.fps, 1e-9)
    extent_x = (t[0] - dt / 2, t[-1] + dt / 2)
    panels = _panels(result)
    axes = fig.subplots(len(panels), 1, sharex=True, gridspec_kw={"height_ratios": [PANEL_RATIOS[p] for p in panels]})
    axes = np.atleast_1d(axes)
    if label is not None:
        colour = np.array(track_colour(result.track_id)) / 255
        fig.suptitle(f"{label}: face in {int(result.face_found.sum())} of {result.num_frames} frames", fontsize=9,
                     color="black", backgroundcolor=(*colour, 0.35), ha="left", x=0.01)
    no_face = _runs(~result.face_found)
    blue, orange, red = (np.array(c) / 255 for c in (PROB_COLOUR, ALEATORIC_COLOUR, EPISTEMIC_COLOUR))

    for ax, panel in zip(axes, panels):
        if panel in ("valence", "arousal"):
            k = 0 if panel == "valence" else 1
            value, spread = preds.va[:, k], preds.va_spread()[:, k]
            if regions is not None and regions.va_lo is not None:
                ax.fill_between(t, regions.va_lo[:, k], regions.va_hi[:, k], color=blue, alpha=0.2, lw=0,
                                label=f"{100 * conformal.coverage:g}% conformal interval")
            else:
                ax.fill_between(t, value - spread, value + spread, color=blue, alpha=0.2, lw=0, label="+-1 sd of bins")
            ax.plot(t, value, color=blue, lw=1.2, label=panel)
            ax.axhline(0, color="grey", lw=0.5)
            ax.set_ylim(-1.05, 1.05)
            ax.set_ylabel(panel)
            ax.legend(loc="upper right", fontsize=7)
        elif panel == "uncertainty":
            curves = []
            if preds.expr is not None:
                curves.append(("expression", preds.uncertainty["EXPR"], None, "#7b1fa2"))
            if preds.va is not None:
                curves.append(("valence", preds.uncertainty["VA"], 0, blue))
                curves.append(("arousal", preds.uncertainty["VA"], 1, orange))
            if preds.au is not None:
                curves.append(("AU (mean)", preds.uncertainty["AU"], "mean", "#2e7d32"))
            for name, u, k, colour in curves:
                pick = (lambda a: a) if k is None else (lambda a: a.mean(axis=1)) if k == "mean" else (lambda a: a[:, k])
                ax.plot(t, pick(u.total), color=colour, lw=1.1, label=name)
                if u.epistemic is not None:
                    ax.plot(t, pick(u.epistemic), color=colour, lw=0.8, ls="--")
            ax.set_ylim(0, 1.02)
            ax.set_ylabel("uncertainty")
            label = "total (solid), epistemic (dashed)" if preds.is_ensemble else "normalized entropy"
            ax.legend(loc="lower right", fontsize=7, ncol=len(curves), title=label, title_fontsize=7)
        elif panel == "expression":
            classes = preds.expr_classes
            cmap = ListedColormap(EXPR_COLOURS[:len(classes)])
            ax.imshow(preds.expr[None].astype(float), aspect="auto", cmap=cmap, vmin=-0.5, vmax=len(classes) - 0.5,
                      extent=(*extent_x, 0, 1), interpolation="nearest")
            if regions is not None and regions.expr is not None:  # the set size, 1 (bottom) to all classes (top)
                ax.step(t, regions.expr.sum(axis=1) / (len(classes) + 1), where="mid", color="white", lw=1.0)
            ax.set_yticks([])
            ax.set_ylabel("expr", rotation=0, ha="right", va="center")
            present = sorted(set(int(e) for e in np.unique(preds.expr)))
            handles = [Patch(color=EXPR_COLOURS[k], label=classes[k]) for k in present]
            if regions is not None and regions.expr is not None:
                handles.append(Patch(facecolor="white", edgecolor="black", label=f"set size (white, 1-{len(classes)})"))
            ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)
        else:
            image = ax.imshow(preds.au_probs.T, aspect="auto", cmap="Greys", vmin=0, vmax=1,
                              extent=(*extent_x, len(AU_NAMES) - 0.5, -0.5), interpolation="nearest")
            ax.set_yticks(np.arange(len(AU_NAMES)), AU_NAMES, fontsize=7)
            ax.set_ylabel("P(AU)")
            fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01)
        for start, end in no_face:
            ax.axvspan(t[start] - dt / 2, t[min(end, len(t)) - 1] + dt / 2, color="grey", alpha=0.3, lw=0)
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(*extent_x)
