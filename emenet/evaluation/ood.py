"""Does the ensemble know what it does not know? Uncertainty on out-of-distribution clips.

In-distribution (ID) clips are `clip_len` consecutive validation crops; out-of-distribution
(OOD) clips, made here from a seed, are of two families:

- non-face images: `noise` (i.i.d. uniform pixels, new every frame), `texture` (smooth random
  colour fields), `gradient` (linear colour ramps), `shapes` (random ellipses, rectangles and
  triangles on a plain background); the last three drift by a pixel or so per frame, as a
  video would;
- corrupted faces, each from a random ID clip: `face_noise` (Gaussian noise, sd 0.35 of the
  range), `face_blur` (Gaussian blur, sd 7 % of the side), `face_occlusion` (one or two solid
  rectangles over 40-70 % of the crop) and `face_shuffle` (one random permutation of the pixel
  positions, the same for the whole clip).

Every clip is a fresh sequence of the same length (no carried hidden state), so the GRU sees
ID and OOD inputs alike. Per clip and task the ensemble's normalized-entropy uncertainty
(emenet.uncertainty: total, aleatoric, epistemic) is averaged over frames and over the AUs or VA
dimensions, and the AUROC (sklearn's roc_auc_score, OOD = positive) says how well it separates
OOD from ID clips: 1 separates perfectly, 0.5 not at all.

Files under `out_dir`: ood_auroc.csv (one row per OOD set: each kind, each family, all),
ood_auroc.md, ood_clips.csv (every clip's uncertainties), ood_histogram.png, ood_summary.json.

    >>> members = members_from_names(["t0", "t1"], [4], "checkpoints")  # doctest: +SKIP
    >>> result = evaluate_ood(members, "data/synth", "runs/ood")  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from emenet.evaluation.calibration import stack_probs
from emenet.data.affwild2 import load_affwild2_index
from emenet.data.augment import to_float_frames
from emenet.data.clips import LabeledVideo
from emenet.data.images import read_crops
from emenet.data.labeled import labeled_videos
from emenet.distill.members import Member
from emenet.evaluation.validate_ensemble import check_device, check_outputs_free, load_visual_members, markdown_columns
from emenet.errors import EMENetInputError
from emenet.io_utils import atomic_path, write_atomic, write_json
from emenet.models.emenet import EMENet
from emenet.models.mobilefacenet import INPUT_SIZE
from emenet.uncertainty import ensemble_task_uncertainty

log = logging.getLogger(__name__)

ID_SET = "in_distribution"
NON_FACE_KINDS: tuple[str, ...] = ("noise", "texture", "gradient", "shapes")
CORRUPTION_KINDS: tuple[str, ...] = ("face_noise", "face_blur", "face_occlusion", "face_shuffle")
OOD_KINDS: tuple[str, ...] = NON_FACE_KINDS + CORRUPTION_KINDS
FAMILIES: dict[str, tuple[str, ...]] = {"non_face": NON_FACE_KINDS, "corrupted_face": CORRUPTION_KINDS}
ALL_OOD = "all_ood"
MEASURES: tuple[str, ...] = ("epistemic", "total", "aleatoric")
MEAN_TASK = "mean"  # the mean of the tasks' uncertainties
OUTPUT_FILES: tuple[str, ...] = ("ood_auroc.csv", "ood_auroc.md", "ood_clips.csv", "ood_histogram.png",
                                 "ood_summary.json")

# Corruption strengths (fractions of the pixel range or of the crop side).
NOISE_SD = 0.35
BLUR_SD = 0.07
OCCLUDED_AREA = (0.4, 0.7)
# Largest drift of the synthetic images, in pixels per frame.
MAX_DRIFT = 1.5


def family_of(kind: str) -> str:
    if kind == ID_SET:
        return ID_SET
    for family, kinds in FAMILIES.items():
        if kind in kinds:
            return family
    raise EMENetInputError(f"unknown OOD kind {kind!r}; valid kinds are {list(OOD_KINDS)}")


# --- non-face clips ----------------------------------------------------------------------------

def _drift(canvas: np.ndarray, clip_len: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """(T, 3, size, size) windows of an (H, W, 3) canvas moving at a constant random velocity."""
    pad = canvas.shape[0] - size
    v = rng.uniform(-MAX_DRIFT, MAX_DRIFT, size=2)
    start = (pad - v * (clip_len - 1)) / 2
    frames = []
    for t in range(clip_len):
        y, x = np.clip(np.round(start + v * t), 0, pad).astype(int)
        frames.append(canvas[y:y + size, x:x + size])
    return np.stack(frames).transpose(0, 3, 1, 2)


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, size=3))


def make_non_face_clip(kind: str, rng: np.random.Generator, clip_len: int = 16, size: int = INPUT_SIZE) -> np.ndarray:
    """A (clip_len, 3, size, size) uint8 RGB clip of a non-face image kind (see the module docstring).

    >>> make_non_face_clip("shapes", np.random.default_rng(0), 4, 32).shape
    (4, 3, 32, 32)
    """
    if kind == "noise":
        return rng.integers(0, 256, size=(clip_len, 3, size, size), dtype=np.uint8)
    side = size + int(math.ceil(MAX_DRIFT * (clip_len - 1))) + 1
    if kind == "texture":
        grid = int(rng.integers(3, 13))
        field = cv2.resize(rng.normal(size=(grid, grid, 3)).astype(np.float32), (side, side),
                           interpolation=cv2.INTER_CUBIC)
        lo, hi = field.min(axis=(0, 1)), field.max(axis=(0, 1))
        field = (field - lo) / np.maximum(hi - lo, 1e-6)  # [0, 1] per channel
        mean, contrast = rng.uniform(40, 215, size=3), rng.uniform(60, 255, size=3)
        canvas = mean + contrast * (field - 0.5)
    elif kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
        ramp = xx * np.cos(angle) + yy * np.sin(angle)
        ramp = (ramp - ramp.min()) / max(ramp.max() - ramp.min(), 1e-6)
        a, b = np.array(_random_colour(rng), np.float32), np.array(_random_colour(rng), np.float32)
        canvas = a + ramp[..., None] * (b - a)
    elif kind == "shapes":
        canvas = np.empty((side, side, 3), np.uint8)
        canvas[:] = _random_colour(rng)
        for _ in range(int(rng.integers(3, 9))):
            colour, centre = _random_colour(rng), tuple(int(c) for c in rng.integers(0, side, size=2))
            shape = rng.integers(3)
            if shape == 0:
                axes = tuple(int(a) for a in rng.integers(side // 12, side // 3, size=2))
                cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
            elif shape == 1:
                corner = tuple(int(c) for c in rng.integers(0, side, size=2))
                cv2.rectangle(canvas, centre, corner, colour, -1)
            else:
                cv2.fillPoly(canvas, [rng.integers(0, side, size=(3, 2)).astype(np.int32)], colour)
    else:
        raise EMENetInputError(f"unknown non-face kind {kind!r}; valid kinds are {list(NON_FACE_KINDS)}")
    canvas = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    return _drift(canvas, clip_len, size, rng)


# --- corrupted faces ---------------------------------------------------------------------------

def corrupt_clip(kind: str, clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A heavily corrupted copy of a (T, 3, H, W) uint8 clip (see the module docstring).

    >>> clip = np.full((2, 3, 8, 8), 128, np.uint8)
    >>> bool((corrupt_clip("face_noise", clip, np.random.default_rng(0)) != clip).any())
    True
    """
    t, _, h, w = clip.shape
    if kind == "face_noise":
        noisy = clip.astype(np.float32) + rng.normal(0.0, NOISE_SD * 255.0, size=clip.shape)
        return np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    if kind == "face_blur":
        sd = BLUR_SD * max(h, w)
        return np.stack([cv2.GaussianBlur(np.ascontiguousarray(f.transpose(1, 2, 0)), (0, 0), sd).transpose(2, 0, 1)
                         for f in clip])
    if kind == "face_occlusion":
        out = clip.copy()
        pieces = int(rng.integers(1, 3))
        area = rng.uniform(*OCCLUDED_AREA) * h * w / pieces  # pieces may overlap a little
        for _ in range(pieces):
            aspect = rng.uniform(0.6, 1.6)
            rh, rw = min(h, int(round(math.sqrt(area * aspect)))), min(w, int(round(math.sqrt(area / aspect))))
            y, x = int(rng.integers(0, h - rh + 1)), int(rng.integers(0, w - rw + 1))
            out[:, :, y:y + rh, x:x + rw] = np.array(_random_colour(rng), np.uint8)[None, :, None, None]
        return out
    if kind == "face_shuffle":
        perm = rng.permutation(h * w)
        return clip.reshape(t, 3, h * w)[:, :, perm].reshape(clip.shape)
    raise EMENetInputError(f"unknown corruption {kind!r}; valid ones are {list(CORRUPTION_KINDS)}")


# --- the clips ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipSpec:
    """One clip to make: its kind (ID_SET or an OOD kind), its source frames (video position and
    first row; video -1 for non-face clips) and its seed."""

    kind: str
    video: int
    start: int
    seed: int


def id_clip_starts(num_frames: int, clip_len: int, clips_per_video: int) -> np.ndarray:
    """Up to `clips_per_video` evenly spaced starts of full clips in a video (none if it is shorter).

    >>> id_clip_starts(100, 16, 3).tolist()
    [0, 42, 84]
    """
    if num_frames < clip_len or clips_per_video < 1:
        return np.zeros(0, dtype=np.int64)
    count = min(clips_per_video, num_frames - clip_len + 1)
    return np.unique(np.round(np.linspace(0, num_frames - clip_len, count)).astype(np.int64))


def plan_clips(videos: Sequence[LabeledVideo], kinds: Sequence[str], clip_len: int, clips_per_video: int,
               clips_per_kind: int, seed: int) -> list[ClipSpec]:
    """ID clips from every long-enough video, then `clips_per_kind` clips of each OOD kind."""
    for kind in kinds:
        family_of(kind)
    id_specs = [ClipSpec(ID_SET, v, int(s), 0) for v, video in enumerate(videos)
                for s in id_clip_starts(len(video.frames), clip_len, clips_per_video)]
    if not id_specs:
        raise EMENetInputError(f"no validation video has {clip_len} frames for an in-distribution clip; "
                               f"lower --clip_len")
    rng = np.random.default_rng(seed)
    specs = list(id_specs)
    for kind in kinds:
        for _ in range(clips_per_kind):
            if kind in CORRUPTION_KINDS:
                source = id_specs[int(rng.integers(len(id_specs)))]
                specs.append(ClipSpec(kind, source.video, source.start, int(rng.integers(2**31))))
            else:
                specs.append(ClipSpec(kind, -1, 0, int(rng.integers(2**31))))
    return specs


def render_clip(spec: ClipSpec, videos: Sequence[LabeledVideo], clip_len: int, size: int = INPUT_SIZE) -> np.ndarray:
    """The (clip_len, 3, size, size) uint8 frames of a planned clip."""
    rng = np.random.default_rng(spec.seed)
    if spec.kind in NON_FACE_KINDS:
        return make_non_face_clip(spec.kind, rng, clip_len, size)
    clip = read_crops(videos[spec.video].crop_paths(np.arange(spec.start, spec.start + clip_len)), size)
    return clip if spec.kind == ID_SET else corrupt_clip(spec.kind, clip, rng)


@torch.no_grad()
def clip_uncertainty(models: Sequence[EMENet], frames: torch.Tensor, tasks: Sequence[str]) -> dict[str, np.ndarray]:
    """Ensemble uncertainty of clips (B, T, 3, H, W), each a fresh sequence: "<TASK>_<measure>" -> (B,).

    Means over frames and over the AUs / VA dimensions; "mean_<measure>" averages the tasks.
    """
    logits = [model(frames)[0] for model in models]
    unc = ensemble_task_uncertainty(stack_probs(logits, tasks))  # task -> measure -> (B, T, ...)
    out = {f"{t}_{m}": unc[t][m].flatten(1).mean(dim=1).cpu().numpy() for t in tasks for m in MEASURES}
    for m in MEASURES:
        out[f"{MEAN_TASK}_{m}"] = np.mean([out[f"{t}_{m}"] for t in tasks], axis=0)
    return out


# --- scores ------------------------------------------------------------------------------------

def ood_sets(kinds: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """OOD set name -> its kinds: each kind, each family with any kind present, and all of them."""
    sets = {k: (k,) for k in kinds}
    for family, members in FAMILIES.items():
        present = tuple(k for k in kinds if k in members)
        if present:
            sets[family] = present
    sets[ALL_OOD] = tuple(kinds)
    return sets


def auroc_table(clips: pd.DataFrame, tasks: Sequence[str]) -> pd.DataFrame:
    """One row per OOD set: the AUROC of each task's (and the mean's) uncertainty measures, ID vs OOD."""
    kinds = [k for k in OOD_KINDS if k in set(clips["set"])]
    id_rows = clips[clips["set"] == ID_SET]
    rows = []
    for name, members in ood_sets(kinds).items():
        ood_rows = clips[clips["set"].isin(members)]
        row: dict[str, object] = {"ood_set": name, "num_id": len(id_rows), "num_ood": len(ood_rows)}
        target = np.concatenate([np.zeros(len(id_rows)), np.ones(len(ood_rows))])
        for task in (*tasks, MEAN_TASK):
            for m in MEASURES:
                column = f"{task}_{m}"
                scores = np.concatenate([id_rows[column].to_numpy(), ood_rows[column].to_numpy()])
                row[f"{column}_auroc"] = float(roc_auc_score(target, scores))
        rows.append(row)
    return pd.DataFrame(rows)


def plot_uncertainty_histograms(clips: pd.DataFrame, tasks: Sequence[str],
                                measures: Sequence[str] = ("epistemic", "total")) -> Figure:
    """Histograms per task (rows) and measure (columns): ID vs non-face vs corrupted-face clips."""
    from matplotlib.figure import Figure

    names = (*tasks, MEAN_TASK)
    fig = Figure(figsize=(4.2 * len(measures), 2.3 * len(names)))
    axes = fig.subplots(len(names), len(measures), squeeze=False)
    groups = [(ID_SET, "#1976d2")] + [(f, c) for f, c in zip(FAMILIES, ("#f57c00", "#d32f2f"))]
    for r, task in enumerate(names):
        for c, m in enumerate(measures):
            ax, column = axes[r, c], f"{task}_{m}"
            values = clips[column].to_numpy()
            lo, hi = float(values.min()), float(values.max())
            bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 31)
            for group, colour in groups:
                v = clips.loc[clips["family"] == group, column].to_numpy()
                if v.size:
                    ax.hist(v, bins=bins, weights=np.full(v.size, 1.0 / v.size), alpha=0.45, color=colour,
                            label=group.replace("_", " "))
            ax.set_title(f"{task}: {m} uncertainty", fontsize=10)
            ax.set_ylabel("share of clips", fontsize=8)
            ax.tick_params(labelsize=8)
    axes[0, 0].legend(fontsize=8)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.95, bottom=0.05, hspace=0.55, wspace=0.2)
    return fig


def auroc_markdown(table: pd.DataFrame, clips: pd.DataFrame, tasks: Sequence[str], summary: dict) -> str:
    names = (*tasks, MEAN_TASK)
    means = clips.groupby("set", sort=False)[[f"{t}_{m}" for t in names for m in ("epistemic", "total")]].mean()
    means = means.reset_index()
    members = ", ".join(f"{m['name']}@{m['epoch']}" for m in summary["members"])
    parts = [
        "# Out-of-distribution detection by uncertainty", "",
        f"Members: {members}. "
        f"{summary['num_id_clips']} in-distribution clips of {summary['clip_len']} frames from {summary['split']}; "
        f"{summary['clips_per_kind']} clips per OOD kind. AUROC: 1 = uncertainty separates OOD from ID perfectly, "
        f"0.5 = not at all.", "",
        "## AUROC of epistemic uncertainty", "",
        markdown_columns(table, [f"{t}_epistemic_auroc" for t in names], list(names), key="ood_set"),
        "", "## AUROC of total uncertainty", "",
        markdown_columns(table, [f"{t}_total_auroc" for t in names], list(names), key="ood_set"),
        "", "## Mean uncertainty per clip set", "",
        markdown_columns(means, [f"{t}_{m}" for t in names for m in ("epistemic", "total")], key="set"), "",
    ]
    return "\n".join(parts)


@dataclass
class OODResult:
    auroc: pd.DataFrame  # ood_auroc.csv
    clips: pd.DataFrame  # ood_clips.csv
    files: list[Path]


def evaluate_ood(members: Sequence[Member], data_root: str | os.PathLike, out_dir: str | os.PathLike, *,
                 split: str = "Validation_Set", kinds: Sequence[str] = OOD_KINDS, clip_len: int = 16,
                 clips_per_video: int = 8, clips_per_kind: int = 32, batch_size: int = 8, seed: int = 0,
                 device: str = "cpu", cache_dir: str | os.PathLike | None = None, max_videos: int | None = None,
                 overwrite: bool = False, progress: bool = True) -> OODResult:
    """Uncertainty of the ensemble on ID and OOD clips and its AUROC per task; writes the files above."""
    for name, value, least in (("--clip_len", clip_len, 1), ("--clips_per_video", clips_per_video, 1),
                               ("--clips_per_kind", clips_per_kind, 1), ("--batch_size", batch_size, 1)):
        if value < least:
            raise EMENetInputError(f"{name} must be at least {least}, got {value}")
    kinds = tuple(kinds)
    if not kinds:
        raise EMENetInputError(f"no OOD kinds given; valid kinds are {list(OOD_KINDS)}")
    for kind in kinds:
        family_of(kind)
    if len(members) < 2:
        raise EMENetInputError(f"epistemic uncertainty needs an ensemble of at least 2 members, got {len(members)}")
    check_device(device)
    out = Path(out_dir)
    paths = [out / f for f in OUTPUT_FILES]
    check_outputs_free(paths, overwrite)
    models, tasks = load_visual_members(members, device)
    for m in models:
        m.eval()
    videos = labeled_videos(load_affwild2_index(data_root, cache_dir=cache_dir), split, tasks, max_videos=max_videos)
    if not videos:
        raise EMENetInputError(f"{data_root}: no {split} videos annotated for {list(tasks)}")
    specs = plan_clips(videos, kinds, clip_len, clips_per_video, clips_per_kind, seed)

    columns: dict[str, list[np.ndarray]] = {}
    for lo in tqdm(range(0, len(specs), batch_size), desc="OOD clips", disable=not progress, leave=False):
        batch = specs[lo:lo + batch_size]
        frames = torch.from_numpy(np.stack([render_clip(s, videos, clip_len) for s in batch])).to(device)
        for key, values in clip_uncertainty(models, to_float_frames(frames), tasks).items():
            columns.setdefault(key, []).append(values)
    clips = pd.DataFrame({
        "set": [s.kind for s in specs], "family": [family_of(s.kind) for s in specs],
        "video": [videos[s.video].name if s.video >= 0 else "" for s in specs],
        "start": [s.start if s.video >= 0 else -1 for s in specs],
        **{key: np.concatenate(parts) for key, parts in columns.items()},
    })
    table = auroc_table(clips, tasks)
    summary = {"members": [m.to_dict() for m in members], "tasks": list(tasks), "split": split,
               "data_root": str(Path(data_root).resolve()), "kinds": list(kinds), "clip_len": clip_len,
               "clips_per_video": clips_per_video, "clips_per_kind": clips_per_kind, "seed": seed,
               "num_id_clips": int((clips["set"] == ID_SET).sum())}

    with atomic_path(out / "ood_auroc.csv", overwrite) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out / "ood_clips.csv", overwrite) as tmp:
        clips.to_csv(tmp, index=False)
    write_atomic(out / "ood_auroc.md", lambda p: p.write_text(auroc_markdown(table, clips, tasks, summary)), overwrite)
    fig = plot_uncertainty_histograms(clips, tasks)
    write_atomic(out / "ood_histogram.png", lambda p: fig.savefig(p, format="png", dpi=100), overwrite)
    write_json(out / "ood_summary.json", summary, overwrite)
    log.info("OOD evaluation written to %s", out)
    return OODResult(table, clips, paths)
