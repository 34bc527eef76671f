"""The figure of a photo with several faces: the photo with every face numbered, then one
compact panel per face (its aligned crop, expression, valence/arousal, active AUs, each with
its uncertainty), in a grid of up to `columns` panels a row.

One face keeps the detailed one-face figure (emenet.viz.drawing.plot_image_prediction).

    >>> fig = plot_faces_prediction(result)  # doctest: +SKIP
    >>> fig.savefig("group_emenet.png")  # doctest: +SKIP
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from emenet.viz.drawing import TRACK_COLOURS, plot_image_prediction
from emenet.inference.image import FacePrediction, ImagePrediction
from emenet.tasks import AU_NAMES

MAX_COLUMNS = 3


def face_colour(index: int) -> np.ndarray:
    """Matplotlib colour (RGB in [0, 1]) of face `index`, the video tracks' palette."""
    return np.array(TRACK_COLOURS[index % len(TRACK_COLOURS)]) / 255


def face_summary(face: FacePrediction) -> list[str]:
    """Short text lines of one face's predictions, each with its total uncertainty."""
    d = face.predictions.frame_dict(0)
    lines = []
    if "EXPR" in d:
        e = d["EXPR"]
        lines.append(f"{e['name']} {e['probs'][e['name']]:.2f}  (u {e['uncertainty']['total']:.2f})")
    if "VA" in d:
        for name, v in d["VA"].items():
            lines.append(f"{name} {v['value']:+.2f}  (u {v['uncertainty']['total']:.2f})")
    if "AU" in d:
        active = [name for name in AU_NAMES if d["AU"][name]["active"]]
        lines.append("AUs on:" + ("" if active else " none"))
        lines += [" " + " ".join(active[k:k + 4]) for k in range(0, len(active), 4)]
    return lines


def plot_faces_prediction(result: ImagePrediction, title: str = "", columns: int = MAX_COLUMNS) -> Figure:
    """The photo with numbered faces above a grid of per-face panels; one face: the one-face figure."""
    if len(result.faces) == 1 or result.image is None:
        return plot_image_prediction(result.crop, result.predictions, title=title)
    columns = min(columns, len(result.faces))
    rows = math.ceil(len(result.faces) / columns)
    height, width = result.image.shape[:2]
    photo_height = min(6.0, 10.0 * height / width)
    fig = Figure(figsize=(10, photo_height + 2.3 * rows + 0.6))
    grid = fig.add_gridspec(1 + rows, 1, height_ratios=[photo_height] + [2.3] * rows, left=0.02, right=0.98,
                            bottom=0.02, top=0.93, hspace=0.25)
    ax = fig.add_subplot(grid[0])
    ax.imshow(result.image)
    for face in result.faces:
        colour = face_colour(face.index)
        x0, y0, x1, y1 = face.box
        ax.add_patch(_rectangle(x0, y0, x1 - x0, y1 - y0, colour))
        ax.text(x0, y0 - 4, str(face.index), color="k", fontsize=9, fontweight="bold", va="bottom",
                bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.5})
        if face.points is not None:
            ax.scatter(face.points[:, 0], face.points[:, 1], s=5, color=colour, edgecolors="k", linewidths=0.3)
    ax.set_axis_off()
    ax.set_title(f"{len(result.faces)} faces" + (f" ({result.num_faces} detected)"
                                                if result.num_faces != len(result.faces) else ""), fontsize=9)
    for k, face in enumerate(result.faces):
        cell = grid[1 + k // columns].subgridspec(1, columns, wspace=0.1)[k % columns].subgridspec(
            1, 2, width_ratios=[1, 1.4], wspace=0.05)
        ax_crop, ax_text = fig.add_subplot(cell[0]), fig.add_subplot(cell[1])
        ax_crop.imshow(face.crop)
        ax_crop.set_axis_off()
        ax_crop.set_title(f"face {face.index}", fontsize=9, color=face_colour(face.index) * 0.7)
        ax_text.set_axis_off()
        ax_text.text(0, 0.95, "\n".join(face_summary(face)), fontsize=7, va="top", ha="left", family="monospace",
                     transform=ax_text.transAxes)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _rectangle(x: float, y: float, w: float, h: float, colour: np.ndarray):
    from matplotlib.patches import Rectangle
    return Rectangle((x, y), w, h, fill=False, edgecolor=colour, linewidth=1.5)
