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

# Order of the heads in the original checkpoints: tmodels.0 EXPR, 1 AU, 2 VA, 3 FA; the
# audio-visual model's voice-activity head, when present, comes last.
ORIGINAL_TASK_ORDER: tuple[str, ...] = ("EXPR", "AU", "VA", "FA", "VAD")
EMOTION_TASKS: tuple[str, ...] = ("EXPR", "AU", "VA")


def validate_tasks(tasks: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Return `tasks` in canonical order, raising ValueError on unknown or repeated names."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise EMENetInputError(f"unknown task(s) {unknown}; valid tasks are {list(TASKS)}")
    if len(set(tasks)) != len(tasks):
        raise EMENetInputError(f"repeated task in {list(tasks)}")
    return tuple(t for t in ORIGINAL_TASK_ORDER if t in tasks)
