"""A small synthetic dataset in the exact Aff-wild2 (ABAW 2021) layout.

The quickstart, the test suite and the later audio-visual and face-tracking work need data that
looks like Aff-wild2 on disk (raw videos with audio, 112x112 aligned crops with missing frames,
per-task annotation files with unannotated rows, two-person videos, test-set lists) and whose
labels a small model can actually learn. Each person's labels are sampled first (a latent
expression in segments of 1-4 s that drives typical action units, random extra AUs, smooth
valence/arousal correlated with the expression); the cartoon face of `synth_face` then renders
them, and the voice of `synth_audio` follows arousal.

    >>> from emenet.data.synth import generate_synthetic_dataset
    >>> summary = generate_synthetic_dataset("data/synth", num_videos=6, progress=False)  # doctest: +SKIP
    >>> summary.splits["AU"]["Train_Set"]  # doctest: +SKIP
    ['1-30-320x240', 'video4_left', ...]

Everything is derived from `seed`: one seed per video (numpy SeedSequence), so the output does
not depend on how many worker processes write it.
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from emenet.data.synth_audio import Voice, room_noise, speech_track
from emenet.data.synth_face import AU, EXTRA_NAMES, FaceRenderer, FaceState, Identity
from emenet.errors import EMENetInputError
from emenet.processes import process_pool_context
from emenet.io_utils import write_json
from emenet.tasks import AU_NAMES, EMOTION_TASKS, EXPR_NAMES, TASKS

log = logging.getLogger(__name__)

CROP_SIZE = 112
SPLITS: tuple[str, str] = ("Train_Set", "Validation_Set")
TEST_SPLIT = "Test_Set"
# Names of the official test lists, per task (abaw2_test_set/test_set_<X>_Challenge.txt).
TEST_LIST_NAMES = {"AU": "AU", "EXPR": "Expr", "VA": "VA"}
# What generate_synthetic_dataset writes; `overwrite=True` removes exactly these, nothing else.
OUTPUT_ENTRIES: tuple[str, ...] = ("videos", "cropped_aligned", "annotations", "abaw2_test_set",
                                   "synthetic_ground_truth", "synth_manifest.json")

# --- how expressions drive the face -------------------------------------------------------------
# Prior over expressions per segment (Neutral a little more frequent, as in Aff-wild2).
EXPR_PRIOR = np.array([0.22, 0.12, 0.11, 0.11, 0.16, 0.14, 0.14])
# P(AU active | expression) per segment, rows in EXPR_NAMES order, columns in AU_NAMES order;
# after the prototypical FACS patterns (Ekman & Friesen): happiness AU6+12(+25), sadness
# AU1+4+15, surprise AU1+2+25+26, anger AU4+7+23/24, disgust AU10(+4), fear AU1+2+4+25.
_P = {
    "Neutral": {},
    "Anger": {"AU4": 0.9, "AU7": 0.8, "AU23": 0.55, "AU24": 0.55, "AU10": 0.1},
    "Disgust": {"AU10": 0.9, "AU4": 0.5, "AU15": 0.3, "AU7": 0.2},
    "Fear": {"AU1": 0.85, "AU2": 0.75, "AU4": 0.7, "AU25": 0.8, "AU26": 0.25, "AU7": 0.2},
    "Happiness": {"AU6": 0.85, "AU12": 0.95, "AU25": 0.5, "AU26": 0.1},
    "Sadness": {"AU1": 0.85, "AU4": 0.8, "AU15": 0.85},
    "Surprise": {"AU1": 0.9, "AU2": 0.9, "AU25": 0.85, "AU26": 0.75},
}
AU_GIVEN_EXPR = np.array([[_P[e].get(a, 0.0) for a in AU_NAMES] for e in EXPR_NAMES])
# Unlabelled cues per expression (see synth_face.EXTRA_NAMES), so the expression shows on its own.
_X = {"Anger": {"glare": 1.0, "flush": 1.0}, "Disgust": {"nose_wrinkle": 1.0},
      "Fear": {"widen": 1.0, "stretch": 1.0, "pallor": 1.0}, "Happiness": {"blush": 1.0},
      "Sadness": {"droop": 1.0, "gaze_down": 1.0, "pallor": 0.6}, "Surprise": {"widen": 1.0, "o_mouth": 1.0}}
EXTRA_GIVEN_EXPR = np.array([[_X.get(e, {}).get(x, 0.0) for x in EXTRA_NAMES] for e in EXPR_NAMES])
# Mean (valence, arousal) per expression, after the circumplex model (Russell 1980).
VA_GIVEN_EXPR = np.array([[0.0, -0.15], [-0.6, 0.65], [-0.55, 0.2], [-0.5, 0.7],
                          [0.65, 0.35], [-0.6, -0.45], [0.25, 0.75]])
# Independent AU activations: fraction of time each AU is on regardless of the expression.
RANDOM_AU_ON = 0.06


@dataclass(frozen=True)
class SynthSummary:
    """What was written: folder, names per task and split, and a few counts."""

    out_dir: Path
    splits: dict[str, dict[str, list[str]]]    # task -> {"Train_Set": [...], "Validation_Set": [...]}
    test_names: dict[str, list[str]]           # task -> names in abaw2_test_set/test_set_<task>_Challenge.txt
    videos: list[str]                          # video paths relative to out_dir
    num_frames: int                            # video frames over all names
    num_crops: int
    seconds: float

    @property
    def names(self) -> list[str]:
        out = {n for task in self.splits.values() for names in task.values() for n in names}
        return sorted(out | {n for names in self.test_names.values() for n in names})


# --- the plan: names, splits and tasks ------------------------------------------------------------

@dataclass
class _PersonPlan:
    name: str
    side: str                  # "single", "left" or "right"
    split: str                 # "Train_Set", "Validation_Set" or "Test_Set"
    tasks: list[str] = field(default_factory=list)


@dataclass
class _VideoPlan:
    index: int
    stem: str
    path: str                  # relative to out_dir
    fps: int
    num_frames: int
    size: tuple[int, int]      # (width, height)
    sample_rate: int
    persons: list[_PersonPlan]
    seed: tuple[int, int]      # (dataset seed, video index) -> numpy SeedSequence


def _plan(seed: int, num_videos: int, min_frames: int, max_frames: int, two_person_videos: int,
          num_test_videos: int) -> list[_VideoPlan]:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xA11]))
    two = set(rng.choice(num_videos, size=min(two_person_videos, num_videos), replace=False).tolist())
    n_val = 0 if num_videos < 2 else max(1, int(round(0.3 * num_videos)))
    val = set(rng.choice(num_videos, size=n_val, replace=False).tolist())
    avi = int(rng.choice([i for i in range(num_videos) if i not in two])) if num_videos - len(two) >= 3 else -1
    plans = []
    for i in range(num_videos + num_test_videos):
        test = i >= num_videos
        fps = 30 if rng.random() < 0.75 else 25
        if i in two:
            size = [(512, 288), (480, 272)][rng.integers(2)]
        else:
            size = [(320, 240), (352, 264), (384, 288)][rng.integers(3)]
        number = i + 1 if not test else 200 + i
        stem = f"video{number}" if (i in two or rng.random() < 0.3) else f"{number}-{fps}-{size[0]}x{size[1]}"
        split = TEST_SPLIT if test else ("Validation_Set" if i in val else "Train_Set")
        sides = ["left", "right"] if i in two else ["single"]
        persons = [_PersonPlan(stem if s == "single" else f"{stem}_{s}", s, split) for s in sides]
        batch = "batch2" if rng.random() < 0.3 else "batch1"
        ext = ".avi" if i == avi else ".mp4"
        plans.append(_VideoPlan(i, stem, f"videos/{batch}/{stem}{ext}", fps,
                                int(rng.integers(min_frames, max_frames + 1)), size,
                                int(rng.choice([16000, 44100, 48000], p=[0.5, 0.3, 0.2])), persons, (seed, i)))
    _assign_tasks(rng, [p for v in plans for p in v.persons])
    return plans


def _assign_tasks(rng: np.random.Generator, persons: list[_PersonPlan]) -> None:
    """Random non-empty task subsets, then repaired so that every task has >= 2 train, >= 2
    validation and >= 1 test names (as far as the names allow) and some name lacks a task."""
    for p in persons:
        p.tasks = [t for t in EMOTION_TASKS if rng.random() < 0.7] or [EMOTION_TASKS[rng.integers(3)]]
    for split, need in (("Train_Set", 2), ("Validation_Set", 2), (TEST_SPLIT, 1)):
        group = [p for p in persons if p.split == split]
        for task in EMOTION_TASKS:
            have = [p for p in group if task in p.tasks]
            lacking = [p for p in group if task not in p.tasks]
            for j in rng.permutation(len(lacking))[:max(0, min(need, len(group)) - len(have))]:
                lacking[j].tasks.append(task)
    annotated = [p for p in persons if p.split != TEST_SPLIT]
    if len(annotated) >= 2 and all(len(p.tasks) == 3 for p in annotated):
        for j in rng.permutation(len(annotated)):   # keep the coverage partial
            p = annotated[j]
            task = EMOTION_TASKS[rng.integers(3)]
            others = [q for q in annotated if q.split == p.split and task in q.tasks and q is not p]
            if len(others) >= 2:
                p.tasks.remove(task)
                break
    for p in persons:
        p.tasks = [t for t in EMOTION_TASKS if t in p.tasks]


# --- labels ---------------------------------------------------------------------------------------

def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along axis 0 with reflected ends (scipy is only a test dependency)."""
    if sigma <= 0:
        return x
    r = int(3 * sigma) + 1
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    x2 = x.reshape(len(x), -1)
    pad = np.pad(x2, ((r, r), (0, 0)), mode="reflect" if len(x) > r else "edge")
    out = np.stack([np.convolve(pad[:, j], k, mode="valid") for j in range(x2.shape[1])], 1)
    return out.reshape(x.shape)


def _smooth_noise(rng: np.random.Generator, n: int, sigma: float, dims: int = 1) -> np.ndarray:
    """A smooth random curve of unit variance in expectation (scaled by the kernel, not by the
    sample's std, which would blow up short curves), clipped to +-2.5."""
    r = int(3 * sigma) + 1
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / max(sigma, 1e-6)) ** 2)
    gain = k.sum() / np.sqrt((k ** 2).sum())
    z = _smooth(rng.standard_normal((n + 2 * r, dims)), sigma)[r:r + n] * gain
    return np.clip(z, -2.5, 2.5)


@dataclass
class PersonLabels:
    """Per-frame labels of one person, and the rendering controls derived from them."""

    expr: np.ndarray       # (T,) int 0..6
    au: np.ndarray         # (T, 12) int 0/1
    au_level: np.ndarray   # (T, 12) float rendered intensity
    extra: np.ndarray      # (T, len(EXTRA_NAMES)) float
    valence: np.ndarray    # (T,) float in [-1, 1]
    arousal: np.ndarray    # (T,) float in [-1, 1]


def sample_labels(rng: np.random.Generator, num_frames: int, fps: float) -> PersonLabels:
    """Expression segments of 1-4 s driving AUs and V/A, plus independent AU events."""
    T = num_frames
    expr = np.zeros(T, np.int64)
    au_level = np.zeros((T, len(AU_NAMES)))
    extra = np.zeros((T, len(EXTRA_NAMES)))
    va_target = np.zeros((T, 2))
    start, prev = 0, -1
    temper = rng.normal(0, 0.12, 2)      # this person's valence/arousal offset
    while start < T:
        end = min(T, start + int(rng.uniform(1.0, 4.0) * fps))
        e = prev
        while e == prev:
            e = int(rng.choice(len(EXPR_NAMES), p=EXPR_PRIOR))
        expr[start:end] = e
        on = rng.random(len(AU_NAMES)) < AU_GIVEN_EXPR[e]
        if e == EXPR_NAMES.index("Anger") and not (on[AU["AU23"]] or on[AU["AU24"]]):
            on[AU[rng.choice(["AU23", "AU24"])]] = True
        for j in np.flatnonzero(on):
            a0 = start + int(rng.integers(0, max(1, int(0.3 * fps))))
            a1 = end - int(rng.integers(0, max(1, int(0.2 * fps))))
            au_level[a0:a1, j] = rng.uniform(0.65, 1.0)
        extra[start:end] = EXTRA_GIVEN_EXPR[e] * rng.uniform(0.6, 1.0)
        va_target[start:end] = VA_GIVEN_EXPR[e] + temper + rng.normal(0, 0.12, 2)
        start, prev = end, e
    mean_on = 1.2 * fps   # independent AU events, about 1.2 s long
    for j in range(len(AU_NAMES)):
        for _ in range(rng.poisson(RANDOM_AU_ON * T / mean_on)):
            a0 = int(rng.integers(0, T))
            a1 = min(T, a0 + int(rng.uniform(0.5, 2.0) * fps))
            au_level[a0:a1, j] = np.maximum(au_level[a0:a1, j], rng.uniform(0.6, 1.0))
    au = (au_level > 0).astype(np.int64)
    au_level = _smooth(au_level, 0.06 * fps)       # rendered onsets/offsets ramp over ~0.2 s
    extra = _smooth(extra, 0.1 * fps)
    va = _smooth(va_target, 0.35 * fps) + 0.12 * _smooth_noise(rng, T, 0.5 * fps, 2)
    va = np.clip(va, -1, 1)
    return PersonLabels(expr, au, au_level, extra, va[:, 0], va[:, 1])


def _unannotated_mask(rng: np.random.Generator, T: int, fps: float) -> np.ndarray:
    """A few segments (0.2-1 s) whose rows are unannotated, as in the real annotation files."""
    mask = np.zeros(T, bool)
    for _ in range(int(rng.integers(1, 3))):
        n = int(rng.uniform(0.2, 1.0) * fps)
        s = int(rng.integers(0, max(1, T - n)))
        mask[s:s + n] = True
    return mask


def _missing_crops(rng: np.random.Generator, T: int) -> np.ndarray:
    """Frames (0-based) where the 'detector' failed: 2-5 % of frames, in runs of 1-8."""
    missing = np.zeros(T, bool)
    target = int(round(rng.uniform(0.02, 0.05) * T))
    while missing.sum() < target:
        n = int(min(rng.geometric(0.35), 8))
        s = int(rng.integers(0, T - n))
        missing[s:s + n] = True
    return missing


def _annotation_text(task: str, labels: PersonLabels, unannotated: np.ndarray) -> str:
    spec = TASKS[task]
    values = {"AU": labels.au, "EXPR": labels.expr, "VA": np.column_stack([labels.valence, labels.arousal])}[task]
    text = (lambda v: f"{v:.3f}") if spec.value_format else (lambda v: str(int(v)))  # synthetic VA: 3 decimals
    blank = ",".join([f"{spec.missing_value:g}"] * spec.file_columns)
    rows = [blank if u else ",".join(map(text, r)) for r, u in zip(values.reshape(len(values), -1), unannotated)]
    return TASKS[task].header + "\n" + "\n".join(rows) + "\n"


# --- one video ------------------------------------------------------------------------------------

def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """A blurred indoor-looking scene, larger than the frame so the camera can pan."""
    c0, c1 = rng.uniform(40, 220, 3), rng.uniform(40, 220, 3)
    g = np.linspace(0, 1, h)[:, None, None]
    img = np.broadcast_to(c0 * (1 - g) + c1 * g, (h, w, 3)).astype(np.uint8).copy()
    for _ in range(int(rng.integers(6, 14))):
        col = tuple(float(c) for c in rng.uniform(20, 240, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.7:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(15, w // 3)), y + int(rng.integers(15, h // 3))), col, -1)
        else:
            cv2.circle(img, (x, y), int(rng.integers(8, h // 6)), col, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), 2.5)


@dataclass
class _Person:
    plan: _PersonPlan
    labels: PersonLabels
    renderer: FaceRenderer
    cx: np.ndarray            # face centre in the frame, pixels (T,)
    cy: np.ndarray
    scale: np.ndarray         # pixels per face unit (T,)
    roll: np.ndarray          # degrees (T,)
    yaw: np.ndarray           # face units (T,)
    blink: np.ndarray
    gaze: np.ndarray          # (T, 2)
    light: np.ndarray         # (T, 2)
    talk: np.ndarray          # (T,)
    crop_jitter: np.ndarray   # (T, 3): dx, dy (crop pixels), log-scale
    missing: np.ndarray       # (T,) bool


def _make_person(rng: np.random.Generator, plan: _PersonPlan, vp: _VideoPlan, slot: tuple[float, float]) -> _Person:
    T, fps = vp.num_frames, vp.fps
    w, h = vp.size
    labels = sample_labels(rng, T, fps)
    identity = Identity.sample(rng)
    base = h * rng.uniform(0.50, 0.58) / (2 * identity.face_h)
    if plan.side != "single":
        base = min(base, w * 0.36 / (2 * identity.face_w + 16))
    a01 = (labels.arousal + 1) / 2
    jitter = _smooth(rng.standard_normal((T, 2)), 0.8) * (0.3 + 1.2 * a01)[:, None] * 1.5   # restless when aroused
    drift = _smooth_noise(rng, T, 1.2 * fps, 2)
    cx = slot[0] * w + 0.05 * w * drift[:, 0] + jitter[:, 0]
    cy = slot[1] * h + 0.03 * h * drift[:, 1] + jitter[:, 1]
    scale = base * np.exp(0.04 * _smooth_noise(rng, T, 1.5 * fps)[:, 0])
    roll = 4.0 * _smooth_noise(rng, T, 1.0 * fps)[:, 0] + 0.5 * jitter[:, 0]
    yaw = 2.0 * _smooth_noise(rng, T, 1.0 * fps)[:, 0]
    blink = np.zeros(T)
    t = rng.uniform(0.5, 3.0) * fps
    while t < T:
        i = int(t)
        blink[i:i + 5] = np.array([0.5, 1.0, 0.8, 0.4, 0.1])[:len(blink[i:i + 5])]
        t += rng.uniform(1.5, 5.0) * fps * (1.3 - 0.6 * a01[i])
    gaze = 0.6 * _smooth_noise(rng, T, 0.8 * fps, 2)
    light = np.clip(0.1 * _smooth_noise(rng, T, 2.0 * fps, 2) + rng.uniform(-0.15, 0.15, 2), -0.3, 0.3)
    crop_jitter = _smooth(rng.standard_normal((T, 3)), 1.0) * np.array([1.2, 1.2, 0.02])
    renderer = FaceRenderer(identity, float(base))
    return _Person(plan, labels, renderer, cx, cy, scale, roll, yaw, blink, gaze, light, np.zeros(T),
                   crop_jitter, _missing_crops(rng, T))


def _patch_to_frame(p: _Person, t: int) -> np.ndarray:
    """2x3 affine mapping patch pixels to frame pixels at frame t (scale, roll, translation)."""
    r = p.renderer
    s = p.scale[t] / r.scale
    m = cv2.getRotationMatrix2D(r.centre, float(p.roll[t]), float(s))
    m[:, 2] += (p.cx[t] - r.centre[0], p.cy[t] - r.centre[1])
    return m


def _paste(frame: np.ndarray, rgba: np.ndarray, m: np.ndarray) -> None:
    """Warp the RGBA face patch into the frame (only its bounding box) and alpha-blend it."""
    h, w = frame.shape[:2]
    ph, pw = rgba.shape[:2]
    corners = np.array([[0, 0, 1], [pw, 0, 1], [0, ph, 1], [pw, ph, 1]], np.float64) @ m.T
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, (w, h))
    if x1 <= x0 or y1 <= y0:
        return
    mr = m.copy()
    mr[:, 2] -= (x0, y0)
    face = cv2.warpAffine(rgba, mr, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR)
    weight = face[..., 3].astype(np.float32) * (1 / 255.0)
    roi = frame[y0:y1, x0:x1]
    roi[:] = cv2.blendLinear(cv2.cvtColor(face, cv2.COLOR_RGBA2RGB), roi, weight, 1 - weight)


def _crop(frame: np.ndarray, p: _Person, m: np.ndarray, t: int) -> np.ndarray:
    """The 112x112 aligned crop: the face's canonical box, with small alignment errors."""
    r = p.renderer
    side = r.crop_side * np.exp(p.crop_jitter[t, 2])
    k = side / CROP_SIZE
    cx = r.crop_centre[0] + p.crop_jitter[t, 0] * k
    cy = r.crop_centre[1] + p.crop_jitter[t, 1] * k
    crop_to_patch = np.array([[k, 0, cx - k * CROP_SIZE / 2], [0, k, cy - k * CROP_SIZE / 2], [0, 0, 1]])
    crop_to_frame = m @ crop_to_patch
    return cv2.warpAffine(frame, crop_to_frame, (CROP_SIZE, CROP_SIZE),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def _face_box(p: _Person, m: np.ndarray) -> tuple[float, float, float, float]:
    """Frame-pixel box of the face (ear to ear, hairline to chin): the ground truth for trackers."""
    r, idn = p.renderer, p.renderer.identity
    k = r.scale
    pts = np.array([[r.centre[0] + sx * idn.face_w * k, r.centre[1] + sy, 1.0]
                    for sx in (-1, 1) for sy in (-0.62 * idn.face_h * k, idn.face_h * k)]) @ m.T
    return tuple(float(v) for v in (*pts.min(0), *pts.max(0)))  # type: ignore[return-value]


def _video_codec(path: str) -> str:
    if path.endswith(".avi") or "libx264" not in av.codecs_available:
        return "mpeg4"
    return "libx264"


def _make_video(vp: _VideoPlan, out_dir: str) -> dict[str, Any]:
    """Render, encode and write everything that belongs to one video file; return its facts."""
    rng = np.random.default_rng(np.random.SeedSequence(list(vp.seed)))
    out = Path(out_dir)
    w, h = vp.size
    T, fps = vp.num_frames, vp.fps
    slots = [(0.5, 0.46)] if len(vp.persons) == 1 else [(0.27, 0.48), (0.73, 0.48)]
    persons = [_make_person(rng, pp, vp, slot) for pp, slot in zip(vp.persons, slots)]

    # audio: each person speaks; two people take turns of a few seconds
    n_samples = int(round(T / fps * vp.sample_rate))
    audio = room_noise(rng, n_samples, vp.sample_rate, level=float(rng.uniform(0.002, 0.006)))
    turns = np.ones(T, bool)
    if len(persons) == 2:
        turn_len = int(rng.uniform(1.5, 3.0) * fps)
        turns = (np.arange(T) // turn_len + int(rng.integers(2))) % 2 == 0
    vad: dict[str, np.ndarray] = {}
    for i, p in enumerate(persons):
        track = speech_track(rng, p.labels.arousal, fps, vp.sample_rate, Voice.sample(rng),
                             None if len(persons) == 1 else (turns if i == 0 else ~turns))
        audio[:len(track.samples)] += track.samples
        p.talk = track.envelope
        vad[p.plan.name] = track.voice_activity
    audio = np.clip(audio, -1, 1).astype(np.float32)

    # scene: background panning slowly, global brightness drifting, sensor noise
    bg = _background(rng, w + 48, h + 36)
    pan = (_smooth_noise(rng, T, 2.0 * fps, 2) * np.array([10.0, 7.0]) + np.array([24.0, 18.0])).round().astype(int)
    pan = np.clip(pan, 0, (48, 36))
    bright = 1.0 + 0.08 * _smooth_noise(rng, T, 2.5 * fps)[:, 0] + rng.uniform(-0.1, 0.08)
    noise_bank = [rng.normal(0, rng.uniform(0.8, 2.0), (h, w, 3)).astype(np.int16) for _ in range(6)]
    noise_pick = rng.integers(0, len(noise_bank), T)
    jpeg_quality = int(rng.integers(75, 96))

    for p in persons:
        (out / "cropped_aligned" / p.plan.name).mkdir(parents=True, exist_ok=True)
    video_path = out / vp.path
    video_path.parent.mkdir(parents=True, exist_ok=True)
    boxes: dict[str, list[tuple[float, float, float, float]]] = {p.plan.name: [] for p in persons}
    container = av.open(str(video_path), "w")
    try:
        vs = container.add_stream(_video_codec(vp.path), rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.thread_count = 1
        if vs.codec_context.name == "libx264":
            vs.options = {"preset": "ultrafast", "crf": "23"}
        else:
            vs.bit_rate = 900_000
        aus = container.add_stream("aac", rate=vp.sample_rate)
        aus.layout = "mono"
        aus.options = {"aac_coder": "fast"}
        a_pos, a_chunk = 0, 1024
        state = FaceState.neutral()
        for t in range(T):
            frame = np.ascontiguousarray(bg[pan[t, 1]:pan[t, 1] + h, pan[t, 0]:pan[t, 0] + w])
            mats = []
            for p in persons:
                lab = p.labels
                state.au, state.extra = lab.au_level[t], lab.extra[t]
                state.valence, state.arousal = float(lab.valence[t]), float(lab.arousal[t])
                state.blink, state.yaw = float(p.blink[t]), float(p.yaw[t])
                state.gaze = (float(p.gaze[t, 0]), float(p.gaze[t, 1]))
                state.talk = float(p.talk[t])
                rgba = p.renderer.render(state, (float(p.light[t, 0]), float(p.light[t, 1])))
                m = _patch_to_frame(p, t)
                _paste(frame, rgba, m)
                mats.append(m)
            frame = cv2.convertScaleAbs(frame, alpha=float(bright[t]))
            frame = cv2.add(frame, noise_bank[noise_pick[t]], dtype=cv2.CV_8U)
            for p, m in zip(persons, mats):
                boxes[p.plan.name].append(_face_box(p, m))
                if not p.missing[t]:
                    crop = _crop(frame, p, m, t)
                    cv2.imwrite(str(out / "cropped_aligned" / p.plan.name / f"{t + 1:05d}.jpg"), crop[..., ::-1],
                                [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts = t
            container.mux(vs.encode(vf))
            a_end = min(n_samples, int(round((t + 1) / fps * vp.sample_rate)))
            while a_pos + a_chunk <= a_end or (t == T - 1 and a_pos < n_samples):
                chunk = audio[a_pos:a_pos + a_chunk]
                af = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                af.sample_rate, af.pts = vp.sample_rate, a_pos
                container.mux(aus.encode(af))
                a_pos += len(chunk)
        container.mux(vs.encode(None))
        container.mux(aus.encode(None))
    finally:
        container.close()

    facts: dict[str, Any] = {}
    for p in persons:
        _write_labels(rng, out, p, vp, boxes[p.plan.name], vad[p.plan.name], facts)
    return facts


def _write_labels(rng: np.random.Generator, out: Path, p: _Person, vp: _VideoPlan,
                  boxes: list[tuple[float, float, float, float]], vad: np.ndarray, facts: dict[str, Any]) -> None:
    T = vp.num_frames
    name = p.plan.name
    for task in p.plan.tasks:
        unannotated = _unannotated_mask(rng, T, vp.fps)
        folder = TASKS[task].annotation_dir
        path = (out / "synthetic_ground_truth" / folder if p.plan.split == TEST_SPLIT
                else out / "annotations" / folder / p.plan.split) / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_annotation_text(task, p.labels, unannotated))
    gt = out / "synthetic_ground_truth"
    (gt / "face_boxes").mkdir(parents=True, exist_ok=True)
    (gt / "face_boxes" / f"{name}.csv").write_text(
        "frame,x0,y0,x1,y1\n" + "".join(f"{i + 1},{x0:.1f},{y0:.1f},{x1:.1f},{y1:.1f}\n"
                                          for i, (x0, y0, x1, y1) in enumerate(boxes)))
    (gt / "voice_activity").mkdir(parents=True, exist_ok=True)
    (gt / "voice_activity" / f"{name}.txt").write_text("voice_activity\n" + "".join(f"{int(v)}\n" for v in vad))
    idn = p.renderer.identity
    facts[name] = {
        "video": vp.path, "side": p.plan.side, "split": p.plan.split, "tasks": p.plan.tasks,
        "fps": vp.fps, "num_frames": T, "missing_crops": (np.flatnonzero(p.missing) + 1).tolist(),
        "expr_counts": np.bincount(p.labels.expr, minlength=len(EXPR_NAMES)).tolist(),
        "au_rates": np.round(p.labels.au.mean(0), 3).tolist(),
        "identity": {"skin": [round(c) for c in idn.skin], "hair_style": idn.hair_style},
    }


# --- the whole dataset ----------------------------------------------------------------------------

def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise EMENetInputError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise EMENetInputError(f"{out} is not empty; pass overwrite=True (--overwrite) to replace it")
        from emenet.data.synth_releases import SYNTH_RELEASES, release_entries
        for entry in OUTPUT_ENTRIES + tuple(e for r in SYNTH_RELEASES for e in release_entries(r)):
            target = out / entry
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


DEFAULT_TWO_PERSON_VIDEOS = 2


def _validate_args(num_videos: int, min_frames: int, max_frames: int, two_person_videos: int,
                   num_test_videos: int) -> None:
    if num_videos < 1:
        raise EMENetInputError(f"num_videos must be >= 1, got {num_videos}")
    if not 30 <= min_frames <= max_frames:
        raise EMENetInputError(f"need 30 <= min_frames <= max_frames, got {min_frames} and {max_frames}")
    if not 0 <= two_person_videos <= num_videos:
        raise EMENetInputError(f"two_person_videos must be in [0, num_videos={num_videos}], got {two_person_videos}")
    if num_test_videos < 0:
        raise EMENetInputError(f"num_test_videos must be >= 0, got {num_test_videos}")


def _init_worker() -> None:
    cv2.setNumThreads(1)   # one process per video already uses every core



def generate_synthetic_dataset(out_dir: str | Path, num_videos: int = 16, seed: int = 0, min_frames: int = 150,
                               max_frames: int = 300, two_person_videos: int | None = None, num_test_videos: int = 3,
                               overwrite: bool = False, progress: bool = True,
                               num_workers: int | None = None, release: str = "abaw2") -> SynthSummary:
    """Write a synthetic Aff-wild2-layout dataset to `out_dir` and return what was written.

    `num_videos` annotated video files (train + validation; `two_person_videos` of them show two
    people, annotated as `<video>_left` / `<video>_right`; default 2, or 1 for a single video) plus `num_test_videos` test videos
    listed in abaw2_test_set/ whose labels go to synthetic_ground_truth/. Deterministic for a
    given seed and independent of `num_workers` (default: up to 4 processes, one video each).
    `release` (abaw2, abaw3, abaw5, abaw6, mtl) rewrites the annotations into that Aff-wild2
    release's layout (`emenet.data.synth_releases`; 8 expression classes after the 2nd ABAW).

        >>> s = generate_synthetic_dataset("data/synth", num_videos=6, seed=1, progress=False)  # doctest: +SKIP
        >>> sorted(s.splits)  # doctest: +SKIP
        ['AU', 'EXPR', 'VA']
    """
    t0 = time.perf_counter()
    if two_person_videos is None:
        two_person_videos = min(DEFAULT_TWO_PERSON_VIDEOS, num_videos)
    from emenet.data.synth_releases import SYNTH_RELEASES, convert_release
    if release not in SYNTH_RELEASES:
        raise EMENetInputError(f"unknown release {release!r}; valid ones are {list(SYNTH_RELEASES)}")
    _validate_args(num_videos, min_frames, max_frames, two_person_videos, num_test_videos)
    out = Path(out_dir)
    _prepare_out_dir(out, overwrite)
    plans = _plan(seed, num_videos, min_frames, max_frames, two_person_videos, num_test_videos)
    log.info("writing %d synthetic videos (%d names) to %s", len(plans), sum(len(v.persons) for v in plans), out)

    from tqdm.auto import tqdm   # local: tqdm is only needed while writing

    order = sorted(plans, key=lambda v: -v.num_frames * len(v.persons))   # longest first balances workers
    workers = num_workers if num_workers is not None else min(os.cpu_count() or 1, 4)
    workers = max(1, min(workers, len(plans)))
    facts: dict[str, Any] = {}
    bar = tqdm(total=len(plans), desc="synthetic videos", unit="video", disable=not progress)
    try:
        if workers == 1:
            for vp in order:
                facts.update(_make_video(vp, str(out)))
                bar.update()
        else:
            cv2_threads = cv2.getNumThreads()
            cv2.setNumThreads(1)   # stop OpenCV's thread pool: a forked child would hang on it
            try:
                with ProcessPoolExecutor(workers, mp_context=process_pool_context(), initializer=_init_worker) as pool:
                    for result in pool.map(_make_video, order, [str(out)] * len(order)):
                        facts.update(result)
                        bar.update()
            finally:
                cv2.setNumThreads(cv2_threads)
    finally:
        bar.close()

    test_names: dict[str, list[str]] = {t: [] for t in EMOTION_TASKS}
    splits: dict[str, dict[str, list[str]]] = {t: {s: [] for s in SPLITS} for t in EMOTION_TASKS}
    for vp in plans:
        for p in vp.persons:
            for task in p.tasks:
                (test_names[task] if p.split == TEST_SPLIT else splits[task][p.split]).append(p.name)
    test_dir = out / "abaw2_test_set"
    test_dir.mkdir(exist_ok=True)
    for task, names in test_names.items():
        (test_dir / f"test_set_{TEST_LIST_NAMES[task]}_Challenge.txt").write_text("".join(n + "\n" for n in names))

    videos = {vp.stem: {"path": vp.path, "fps": vp.fps, "num_frames": vp.num_frames, "width": vp.size[0],
                        "height": vp.size[1], "codec": _video_codec(vp.path), "audio_sample_rate": vp.sample_rate,
                        "names": [p.name for p in vp.persons]} for vp in plans}
    params = {"num_videos": num_videos, "min_frames": min_frames, "max_frames": max_frames,
              "two_person_videos": two_person_videos, "num_test_videos": num_test_videos}
    manifest = {"format": "emenet-synth-1", "seed": seed, "params": params, "crop_size": CROP_SIZE,
                "au_names": list(AU_NAMES), "expr_names": list(EXPR_NAMES), "extra_cues": list(EXTRA_NAMES),
                "splits": splits, "test_names": test_names, "videos": videos,
                "names": {n: facts[n] for n in sorted(facts)}}
    manifest.update(convert_release(out, release, seed))
    write_json(out / "synth_manifest.json", manifest)
    num_frames = sum(f["num_frames"] for f in facts.values())
    num_crops = num_frames - sum(len(f["missing_crops"]) for f in facts.values())
    seconds = time.perf_counter() - t0
    log.info("synthetic dataset: %d videos, %d names, %d crops in %.1f s", len(plans), len(facts), num_crops, seconds)
    return SynthSummary(out, splits, test_names, [vp.path for vp in plans], num_frames, num_crops, seconds)
