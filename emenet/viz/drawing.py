"""Pictures of predictions: an annotated video frame (OpenCV, fast) and a photo's figure (matplotlib).

Uncertainty bars show normalized entropy on [0, 1]; for an ensemble the bar is split into
its aleatoric part (orange) and its epistemic part (red), which add up to the total.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from matplotlib.figure import Figure

from emenet.face.align import crop_to_image
from emenet.inference.results import FramePredictions
from emenet.tasks import AU_NAMES, EXPR_NAMES_WITH_OTHER, VA_BIN_CENTRES, VA_NAMES

# RGB colours shared by the video overlay and the figures.
PROB_COLOUR = (66, 133, 244)
ACTIVE_COLOUR = (52, 168, 83)
ALEATORIC_COLOUR = (251, 140, 0)
EPISTEMIC_COLOUR = (211, 47, 47)
BOX_COLOUR = (0, 230, 118)
# One colour per face track (id modulo the palette): box, label and the strip above its panel.
TRACK_COLOURS = ((0, 230, 118), (41, 182, 246), (255, 112, 67), (206, 147, 216), (255, 238, 88), (240, 98, 146))
LANDMARK_COLOUR = (255, 235, 59)
STALE_COLOUR = (150, 150, 150)

PANEL_WIDTH = 300
_ROW = 12
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_TEXT_SCALE = 0.36
# x positions in the panel: label, probability bar, value text, uncertainty bar.
_X_LABEL, _X_BAR, _BAR_W, _X_VALUE, _X_UNC, _UNC_W = 6, 82, 100, 186, 228, 62


def _rgb(colour: tuple[int, int, int], stale: bool) -> tuple[int, int, int]:
    return STALE_COLOUR if stale else colour


def _text(img: np.ndarray, text: str, x: int, y: int, scale: float = _TEXT_SCALE,
          colour: tuple[int, int, int] = (235, 235, 235), thickness: int = 1) -> None:
    cv2.putText(img, text, (x, y), _FONT, scale, colour, thickness, cv2.LINE_AA)


def _unc_bar(img: np.ndarray, y: int, aleatoric: float, epistemic: float | None, stale: bool) -> None:
    top, bottom = y - 8, y
    cv2.rectangle(img, (_X_UNC, top), (_X_UNC + _UNC_W, bottom), (70, 70, 70), -1)
    a = int(round(np.clip(aleatoric, 0, 1) * _UNC_W))
    cv2.rectangle(img, (_X_UNC, top), (_X_UNC + a, bottom), _rgb(ALEATORIC_COLOUR, stale), -1)
    if epistemic is not None:
        e = int(round(np.clip(epistemic, 0, 1) * _UNC_W))
        right = min(_X_UNC + a + e, _X_UNC + _UNC_W)
        cv2.rectangle(img, (_X_UNC + a, top), (right, bottom), _rgb(EPISTEMIC_COLOUR, stale), -1)


def _prob_bar(img: np.ndarray, y: int, p: float, colour: tuple[int, int, int], stale: bool) -> None:
    cv2.rectangle(img, (_X_BAR, y - 8), (_X_BAR + _BAR_W, y), (70, 70, 70), -1)
    cv2.rectangle(img, (_X_BAR, y - 8), (_X_BAR + int(round(np.clip(p, 0, 1) * _BAR_W)), y), _rgb(colour, stale), -1)


def _va_bar(img: np.ndarray, y: int, value: float, stale: bool) -> None:
    cv2.rectangle(img, (_X_BAR, y - 8), (_X_BAR + _BAR_W, y), (70, 70, 70), -1)
    mid = _X_BAR + _BAR_W // 2
    x = int(round(mid + np.clip(value, -1, 1) * _BAR_W / 2))
    cv2.rectangle(img, (min(mid, x), y - 8), (max(mid, x), y), _rgb(PROB_COLOUR, stale), -1)
    cv2.line(img, (mid, y - 10), (mid, y + 2), (200, 200, 200), 1)


def _unc_parts(preds: FramePredictions, task: str, index: tuple) -> tuple[float, float | None]:
    u = preds.uncertainty[task]
    return float(u.aleatoric[index]), None if u.epistemic is None else float(u.epistemic[index])


def panel_height(tasks: tuple[str, ...]) -> int:
    """Pixels the side panel needs to show `tasks` ("AU", "EXPR", "VA")."""
    rows = {"EXPR": len(EXPR_NAMES_WITH_OTHER) + 1, "VA": len(VA_NAMES) + 1, "AU": len(AU_NAMES) + 1}
    return 8 + (3 + sum(rows[t] for t in tasks)) * _ROW


def draw_panel(preds: FramePredictions | None, i: int, height: int, status: str = "", stale: bool = False) -> np.ndarray:
    """A (height, PANEL_WIDTH, 3) RGB panel with row `i` of `preds`: every probability and uncertainty."""
    img = np.full((height, PANEL_WIDTH, 3), 30, np.uint8)
    y = 14
    if status:
        _text(img, status, _X_LABEL, y, 0.4, (255, 120, 120) if stale or preds is None else (235, 235, 235))
        y += _ROW + 2
    if preds is None:
        return img
    _text(img, "prob / value", _X_BAR, y, 0.33, (180, 180, 180))
    _text(img, "uncertainty", _X_UNC, y, 0.33, (180, 180, 180))
    y += _ROW
    if preds.expr_probs is not None:
        k_best = int(preds.expr[i])
        _text(img, f"EXPR: {preds.expr_classes[k_best]}", _X_LABEL, y, 0.4, _rgb((255, 255, 255), stale))
        _unc_bar(img, y, *_unc_parts(preds, "EXPR", (i,)), stale)
        y += _ROW
        for k, name in enumerate(preds.expr_classes):
            p = float(preds.expr_probs[i, k])
            _text(img, name, _X_LABEL + 8, y, colour=_rgb((235, 235, 235), stale))
            _prob_bar(img, y, p, ACTIVE_COLOUR if k == k_best else PROB_COLOUR, stale)
            _text(img, f"{p:.2f}", _X_VALUE, y)
            y += _ROW
    if preds.va_probs is not None:
        y += 2
        for k, name in enumerate(VA_NAMES):
            value = float(preds.va[i, k])
            _text(img, name, _X_LABEL, y, colour=_rgb((235, 235, 235), stale))
            _va_bar(img, y, value, stale)
            _text(img, f"{value:+.2f}", _X_VALUE, y)
            _unc_bar(img, y, *_unc_parts(preds, "VA", (i, k)), stale)
            y += _ROW
    if preds.au_probs is not None:
        y += 2
        for k, name in enumerate(AU_NAMES):
            p = float(preds.au_probs[i, k])
            active = bool(preds.au[i, k])
            _text(img, name + (" *" if active else ""), _X_LABEL, y, colour=_rgb((235, 235, 235), stale))
            _prob_bar(img, y, p, ACTIVE_COLOUR if active else PROB_COLOUR, stale)
            _text(img, f"{p:.2f}", _X_VALUE, y)
            _unc_bar(img, y, *_unc_parts(preds, "AU", (i, k)), stale)
            y += _ROW
    if preds.is_ensemble:
        _text(img, f"{preds.num_models} models: aleatoric | epistemic", _X_LABEL, height - 6, 0.3, (180, 180, 180))
    return img


def annotate_frame(frame: np.ndarray, box: np.ndarray | None, preds: FramePredictions | None, i: int = 0,
                   region: np.ndarray | None = None, status: str = "", stale: bool = False,
                   height: int | None = None) -> np.ndarray:
    """The frame with the face box (thin grey: the crop the model saw; landmarks) and a side
    panel with row `i`'s predictions.

    `frame` is (H, W, 3) uint8 RGB; the result is (height, W + PANEL_WIDTH, 3) RGB, `height`
    by default max(H, what the panel needs); a video passes one height for all its frames.
    `stale` greys the panel out: the predictions shown are an earlier frame's (no face here).
    """
    h, w = frame.shape[:2]
    height = height or max(h, panel_height(preds.tasks if preds is not None else ()))
    out = np.zeros((max(h, height), w + PANEL_WIDTH, 3), np.uint8)
    out[:h, :w] = frame
    if region is not None and np.all(np.isfinite(region)):  # what the model saw
        cx, cy, half = region[0], region[1], region[2] / 2
        cv2.rectangle(out[:h, :w], (int(round(cx - half)), int(round(cy - half))),
                      (int(round(cx + half)), int(round(cy + half))), (120, 120, 120), 1)
    if box is not None and np.all(np.isfinite(box)):
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        cv2.rectangle(out[:h, :w], (x0, y0), (x1, y1), BOX_COLOUR, 2)
        if preds is not None and preds.expr is not None:
            _text(out[:h, :w], preds.expr_classes[int(preds.expr[i])], x0, max(12, y0 - 6), 0.5, BOX_COLOUR, 1)
        if preds is not None and preds.landmarks is not None and region is not None and np.all(np.isfinite(region)):
            for x, y in crop_to_image(preds.landmarks[i], region):
                if 0 <= x < w and 0 <= y < h:
                    cv2.circle(out[:h, :w], (int(round(x)), int(round(y))), 1, LANDMARK_COLOUR, -1)
    out[:, w:] = draw_panel(preds, i, out.shape[0], status, stale)
    return out


def track_colour(track_id: int) -> tuple[int, int, int]:
    return TRACK_COLOURS[track_id % len(TRACK_COLOURS)]


@dataclass(frozen=True)
class TrackOverlay:
    """What one face track shows in one frame: its box and crop region (None: not found here),
    the predictions of its panel (one row; an earlier frame's when `stale`), a status line."""

    track_id: int
    box: np.ndarray | None
    region: np.ndarray | None
    predictions: FramePredictions | None
    status: str
    stale: bool = False


def annotate_tracks(frame: np.ndarray, overlays: Sequence[TrackOverlay], height: int | None = None) -> np.ndarray:
    """The frame with every track's box (its colour, `#id expression`) and one side panel per
    track, left to right in the order given: (height, W + len(overlays) * PANEL_WIDTH, 3) RGB.

    `height` defaults to max(H, what the panels need); a video passes one height for all frames.
    """
    h, w = frame.shape[:2]
    tasks = next((o.predictions.tasks for o in overlays if o.predictions is not None), ())
    height = max(h, height or panel_height(tasks))
    out = np.zeros((height, w + PANEL_WIDTH * len(overlays), 3), np.uint8)
    out[:h, :w] = frame
    image = out[:h, :w]
    for o in overlays:
        colour = track_colour(o.track_id)
        if o.region is not None and np.all(np.isfinite(o.region)):  # what the model saw
            cx, cy, half = o.region[0], o.region[1], o.region[2] / 2
            cv2.rectangle(image, (int(round(cx - half)), int(round(cy - half))),
                          (int(round(cx + half)), int(round(cy + half))), (120, 120, 120), 1)
        if o.box is not None and np.all(np.isfinite(o.box)):
            x0, y0, x1, y1 = (int(round(v)) for v in o.box)
            cv2.rectangle(image, (x0, y0), (x1, y1), colour, 2)
            label = f"#{o.track_id}"
            if o.predictions is not None and o.predictions.expr is not None:
                label += f" {o.predictions.expr_classes[int(o.predictions.expr[0])]}"
            _text(image, label, x0, max(12, y0 - 6), 0.5, colour, 1)
            p = o.predictions
            if p is not None and p.landmarks is not None and o.region is not None and np.all(np.isfinite(o.region)):
                for x, y in crop_to_image(p.landmarks[0], o.region):
                    if 0 <= x < w and 0 <= y < h:
                        cv2.circle(image, (int(round(x)), int(round(y))), 1, LANDMARK_COLOUR, -1)
    for k, o in enumerate(overlays):
        left = w + k * PANEL_WIDTH
        panel = draw_panel(o.predictions, 0, height, f"#{o.track_id} {o.status}", o.stale)
        panel[:3] = track_colour(o.track_id)  # the track's colour along the panel's top
        out[:, left:left + PANEL_WIDTH] = panel
    return out


# ------------------------------------------------------------------------ photo figure

def _uncertainty_barh(ax, y: np.ndarray, aleatoric: np.ndarray, epistemic: np.ndarray | None) -> None:
    ax.barh(y, aleatoric, color=np.array(ALEATORIC_COLOUR) / 255, height=0.6, label="aleatoric")
    if epistemic is not None:
        ax.barh(y, epistemic, left=aleatoric, color=np.array(EPISTEMIC_COLOUR) / 255, height=0.6, label="epistemic")
    ax.set_xlim(0, 1)
    ax.tick_params(labelleft=False)
    ax.grid(axis="x", alpha=0.3)


def plot_image_prediction(crop: np.ndarray, preds: FramePredictions, title: str = "") -> Figure:
    """Figure: the face (with landmarks when predicted) on the left; every AU, the expression,
    valence and arousal with their uncertainty on the right. Row 0 of `preds` is shown."""
    # A bare Figure (no pyplot): no global backend state, works headless, never opens a window.
    tasks = [t for t in ("AU", "EXPR", "VA") if t in preds.tasks]  # display order
    heights = [len(AU_NAMES) if t == "AU" else len(preds.expr_classes) if t == "EXPR" else 3.5 for t in tasks]
    fig = Figure(figsize=(11, 1.2 + 0.3 * sum(heights)), layout="constrained")
    outer = fig.add_gridspec(1, 2, width_ratios=[1, 1.6])
    ax_face = fig.add_subplot(outer[0])
    ax_face.imshow(crop, extent=(0, crop.shape[1], crop.shape[0], 0))
    if preds.landmarks is not None:
        pts = preds.landmarks[0] * np.array([crop.shape[1], crop.shape[0]])
        ax_face.scatter(pts[:, 0], pts[:, 1], s=6, color=np.array(LANDMARK_COLOUR) / 255, edgecolors="k", linewidths=0.3)
        ax_face.set_xlim(0, crop.shape[1])
        ax_face.set_ylim(crop.shape[0], 0)
    ax_face.set_axis_off()
    ax_face.set_title("face crop (112x112)" + (" + landmarks" if preds.landmarks is not None else ""), fontsize=9)

    right = outer[1].subgridspec(len(tasks), 2, height_ratios=heights, width_ratios=[2.2, 1])
    unc_label = "uncertainty (aleatoric + epistemic)" if preds.is_ensemble else "uncertainty (normalized entropy)"
    legend_ax = None
    for r, task in enumerate(tasks):
        ax, ax_u = fig.add_subplot(right[r, 0]), fig.add_subplot(right[r, 1])
        u = preds.uncertainty[task]
        if task == "AU":
            y = np.arange(len(AU_NAMES))[::-1]
            colours = [np.array(ACTIVE_COLOUR if a else PROB_COLOUR) / 255 for a in preds.au[0]]
            ax.barh(y, preds.au_probs[0], color=colours, height=0.6)
            ax.axvline(0.5, color="k", lw=0.8, ls="--")
            ax.set_yticks(y, [f"{n}{' (on)' if a else ''}" for n, a in zip(AU_NAMES, preds.au[0])], fontsize=8)
            ax.set_xlim(0, 1)
            ax.set_title("action units: P(active), threshold 0.5", fontsize=9)
            _uncertainty_barh(ax_u, y, u.aleatoric[0], None if u.epistemic is None else u.epistemic[0])
        elif task == "EXPR":
            classes = preds.expr_classes
            y = np.arange(len(classes))[::-1]
            best = int(preds.expr[0])
            colours = [np.array(ACTIVE_COLOUR if k == best else PROB_COLOUR) / 255 for k in range(len(classes))]
            ax.barh(y, preds.expr_probs[0], color=colours, height=0.6)
            ax.set_yticks(y, classes, fontsize=8)
            ax.set_xlim(0, 1)
            ax.set_title(f"expression: {classes[best]} ({preds.expr_probs[0, best]:.2f})", fontsize=9)
            mid = np.array([y.mean()])
            _uncertainty_barh(ax_u, mid, u.aleatoric[:1], None if u.epistemic is None else u.epistemic[:1])
            ax_u.text(0.02, mid[0] + 0.55, f"over the {len(classes)} classes", fontsize=7, va="bottom")
            ax_u.set_ylim(y.min() - 0.5, y.max() + 0.5)
            legend_ax = ax_u
        else:  # VA: the 20-bin distributions, their expectation, uncertainty per dimension
            width = VA_BIN_CENTRES[1] - VA_BIN_CENTRES[0]
            y = np.array([1.0, 0.0])
            for k, name in enumerate(VA_NAMES):
                probs = preds.va_probs[0, k]
                ax.bar(VA_BIN_CENTRES, 0.8 * probs / max(probs.max(), 1e-9), bottom=y[k] - 0.4, width=width * 0.9,
                       color=np.array(PROB_COLOUR) / 255, alpha=0.5)
                ax.plot([preds.va[0, k]] * 2, [y[k] - 0.45, y[k] + 0.45], color="k", lw=2)
            ax.set_yticks(y, [f"{n} {preds.va[0, k]:+.2f}" for k, n in enumerate(VA_NAMES)], fontsize=8)
            ax.set_xlim(-1.05, 1.05)
            ax.set_ylim(-0.6, 1.6)
            ax.axvline(0, color="grey", lw=0.5)
            ax.set_title("valence / arousal: bin probabilities and expectation", fontsize=9)
            _uncertainty_barh(ax_u, y, u.aleatoric[0], None if u.epistemic is None else u.epistemic[0])
            ax_u.set_ylim(-0.6, 1.6)
        if r == 0:
            ax_u.set_title(unc_label, fontsize=8)
    if preds.is_ensemble:
        (legend_ax or ax_u).legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig

