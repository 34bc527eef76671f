"""Task definitions shared by data, models, losses and outputs.

Every name, header and order here comes from the Aff-wild2 / ABAW 2021 annotation
files and the original EMENet checkpoints (see the reference README).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emenet.errors import EMENetInputError

AU_NAMES: tuple[str, ...] = ("AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26")
EXPR_NAMES: tuple[str, ...] = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")
# From the 3rd ABAW (2022) on, the expression files add an eighth class, `Other` (index 7).
EXPR_NAMES_WITH_OTHER: tuple[str, ...] = EXPR_NAMES + ("Other",)
# Expression class counts a model or a dataset may have: 7 (2nd ABAW, the original's) or 8.
EXPR_CLASS_COUNTS: tuple[int, ...] = (len(EXPR_NAMES), len(EXPR_NAMES_WITH_OTHER))
VA_NAMES: tuple[str, ...] = ("valence", "arousal")

# Number of bins per VA dimension; the VA head emits 2 * NUM_VA_BINS logits (valence first).
NUM_VA_BINS = 20
# Decoding/expectation points: linspace(-1, 1, 20) (original's `bins`).
VA_BIN_CENTRES = np.linspace(-1.0, 1.0, NUM_VA_BINS).astype(np.float32)
# Digitisation edges for the `cce` target: 21 equal edges, label 1.0 falls into the last class.
VA_BIN_EDGES = np.linspace(-1.0, 1.0, NUM_VA_BINS + 1).astype(np.float32)

# Number of face-alignment outputs: 68 landmarks x (x, y).
NUM_LANDMARKS = 68
# Voice-activity outputs of the audio-visual model's auxiliary head: logits of NeMo's VAD
# MarbleNet labels (background, speech), the teacher the original distilled it from.
VAD_NAMES: tuple[str, ...] = ("background", "speech")


@dataclass(frozen=True)
class TaskSpec:
    """One prediction head: its name, logit width and its annotation-file conventions."""

    name: str
    num_logits: int
    annotation_dir: str | None  # folder under annotations/, None for auxiliary tasks
    header: str | None
    missing_value: float | None  # value of an unannotated row


TASKS: dict[str, TaskSpec] = {
    "EXPR": TaskSpec("EXPR", len(EXPR_NAMES), "EXPR_Set", ",".join(EXPR_NAMES), -1),
    "AU": TaskSpec("AU", len(AU_NAMES), "AU_Set", ",".join(AU_NAMES), -1),
    "VA": TaskSpec("VA", 2 * NUM_VA_BINS, "VA_Set", ",".join(VA_NAMES), -5),
    "FA": TaskSpec("FA", 2 * NUM_LANDMARKS, None, None, None),
    "VAD": TaskSpec("VAD", len(VAD_NAMES), None, None, None),  # EMENet-VA only
}

# Values of an unannotated label row (the annotation files' -1 and -5), named once; readers
# turn them into an explicit mask, metrics and losses skip them.
AU_MISSING = int(TASKS["AU"].missing_value)
EXPR_MISSING = int(TASKS["EXPR"].missing_value)
VA_MISSING = float(TASKS["VA"].missing_value)
# The soft-label pseudo-task of a student's clips (emenet.data.soft_labels): every task's
# ensemble probabilities in one row, with the ground truth beside them.
DISTILL_KEY = "distill"

# Order of the heads in the original checkpoints: tmodels.0 EXPR, 1 AU, 2 VA, 3 FA; the
# audio-visual model's voice-activity head, when present, comes last.
ORIGINAL_TASK_ORDER: tuple[str, ...] = ("EXPR", "AU", "VA", "FA", "VAD")
EMOTION_TASKS: tuple[str, ...] = ("EXPR", "AU", "VA")


def expr_names(num_classes: int = len(EXPR_NAMES)) -> tuple[str, ...]:
    """Names of the expression classes of a 7-class (2nd ABAW) or 8-class (3rd ABAW on) head.

    >>> expr_names(8)[-1]
    'Other'
    """
    return EXPR_NAMES if check_expr_classes(num_classes) == len(EXPR_NAMES) else EXPR_NAMES_WITH_OTHER


def check_expr_classes(num_classes: int) -> int:
    """`num_classes` if it is 7 or 8, else EMENetInputError."""
    if int(num_classes) not in EXPR_CLASS_COUNTS:
        raise EMENetInputError(f"expected {' or '.join(map(str, EXPR_CLASS_COUNTS))} expression classes, "
                               f"got {num_classes}")
    return int(num_classes)


def num_logits(task: str, num_expr_classes: int = len(EXPR_NAMES)) -> int:
    """Logit width of a task's head; EXPR's follows the model's class count."""
    return check_expr_classes(num_expr_classes) if task == "EXPR" else TASKS[task].num_logits


def validate_tasks(tasks: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Return `tasks` in canonical order, raising ValueError on unknown or repeated names."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise EMENetInputError(f"unknown task(s) {unknown}; valid tasks are {list(TASKS)}")
    if len(set(tasks)) != len(tasks):
        raise EMENetInputError(f"repeated task in {list(tasks)}")
    return tuple(t for t in ORIGINAL_TASK_ORDER if t in tasks)
