"""Task definitions shared by data, models, losses and outputs.

Every name, header and order here comes from the Aff-wild2 / ABAW 2021 annotation
files and the original EMENet checkpoints (see the reference README).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

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


class TaskKind(str, Enum):
    """How a head's logits become a prediction, a metric, a loss and an uncertainty.

    Modules that act per task keep one strategy per kind next to the functions it calls
    (decoding, metrics, calibration, uncertainty, losses, submission files), so a new task
    of an existing kind, or a changed class count, is one TASKS entry.
    """

    MULTILABEL = "multilabel"  # one sigmoid per unit, decisions p > 0.5, labels 0/1 (AU)
    MULTICLASS = "multiclass"  # one softmax, the argmax class, labels one class index (EXPR)
    BINNED_REGRESSION = "binned_regression"  # a softmax over bins per dimension, their expectation (VA)
    AUXILIARY = "auxiliary"  # no annotation files nor challenge decoding (FA, VAD)


@dataclass(frozen=True)
class TaskSpec:
    """One prediction head: its name, logit width, its kind and its annotation-file conventions.

    `names` are the units (AU), classes (EXPR) or dimensions (VA) in the annotation files'
    column order; `class_variants` the class lists a multiclass head may have (EXPR: 7, or 8
    with `Other`), of which `names` is the default.
    """

    name: str
    num_logits: int
    annotation_dir: str | None  # folder under annotations/, None for auxiliary tasks
    missing_value: float | None  # value of an unannotated row
    kind: TaskKind = TaskKind.AUXILIARY
    names: tuple[str, ...] = ()
    num_bins: int = 0  # bins per dimension of a binned regression
    class_variants: tuple[tuple[str, ...], ...] = ()
    value_format: str | None = None  # float format of the submission files (None: integers)
    column: str | None = None  # output tables' column of a multiclass prediction (units name their own)

    @property
    def header(self) -> str | None:
        """The annotation and submission files' header line (None for auxiliary tasks)."""
        return ",".join(self.names) if self.kind is not TaskKind.AUXILIARY else None

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """Trailing shape of one frame's prediction or label: AU (12,), EXPR (), VA (2,)."""
        return () if self.kind is TaskKind.MULTICLASS else (len(self.names),)

    @property
    def prob_shape(self) -> tuple[int, ...]:
        """Trailing shape of one frame's probabilities: AU (12,), EXPR (7,), VA (2, 20)."""
        if self.kind is TaskKind.BINNED_REGRESSION:
            return (len(self.names), self.num_bins)
        return (len(self.names),)

    @property
    def prob_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Every trailing probability shape this head may have (EXPR (7,) or (8,))."""
        if self.kind is TaskKind.MULTICLASS:
            return tuple((n,) for n in self.logit_widths)
        return (self.prob_shape,)

    @property
    def logit_widths(self) -> tuple[int, ...]:
        """Logit widths this head may have (EXPR 7 or 8; one for every other task)."""
        return tuple(len(v) for v in self.class_variants) or (self.num_logits,)

    @property
    def file_columns(self) -> int:
        """Values per row of the annotation and submission files (EXPR 1, AU 12, VA 2)."""
        return 1 if self.kind is TaskKind.MULTICLASS else len(self.names)

    def with_classes(self, num_classes: int) -> "TaskSpec":
        """This spec for a multiclass head of `num_classes` classes (EXPR: 7 or 8).

        >>> TASKS["EXPR"].with_classes(8).names[-1]
        'Other'
        """
        for variant in self.class_variants:
            if len(variant) == int(num_classes):
                return replace(self, num_logits=len(variant), names=variant)
        counts = " or ".join(map(str, self.logit_widths))
        raise EMENetInputError(f"expected {counts} {self.name} classes, got {num_classes}")

    def annotated(self, labels: np.ndarray) -> np.ndarray:
        """Mask of the annotated labels (N, *frame_shape) in the files' convention: per entry
        (N,) or (N, units), except that a regression frame counts only when every dimension is
        annotated (neither the missing value nor NaN), giving (N,)."""
        missing = labels == self.missing_value
        if self.kind is TaskKind.BINNED_REGRESSION:
            return ~(missing | np.isnan(labels)).any(axis=-1)
        return ~missing

    @property
    def value_dtype(self) -> type:
        """dtype of the files' values: float for regression (with a float format), else int."""
        return np.float64 if self.value_format else np.int64

    def unit_columns(self) -> tuple[str, ...]:
        """Names of the per-frame value columns of output tables: the units or dimensions, or
        the one column of a multiclass prediction (`expression`)."""
        return (self.column,) if self.kind is TaskKind.MULTICLASS else self.names

    def frame_values(self, values: np.ndarray) -> np.ndarray:
        """Rows of an annotation or submission file (N, file_columns) -> per-frame values
        (N, *frame_shape): a multiclass file's one column becomes (N,)."""
        return values[:, 0] if self.kind is TaskKind.MULTICLASS else values


TASKS: dict[str, TaskSpec] = {
    "EXPR": TaskSpec("EXPR", len(EXPR_NAMES), "EXPR_Set", -1, TaskKind.MULTICLASS, EXPR_NAMES,
                     class_variants=(EXPR_NAMES, EXPR_NAMES_WITH_OTHER), column="expression"),
    "AU": TaskSpec("AU", len(AU_NAMES), "AU_Set", -1, TaskKind.MULTILABEL, AU_NAMES),
    "VA": TaskSpec("VA", 2 * NUM_VA_BINS, "VA_Set", -5, TaskKind.BINNED_REGRESSION, VA_NAMES,
                   num_bins=NUM_VA_BINS, value_format="%.6f"),
    "FA": TaskSpec("FA", 2 * NUM_LANDMARKS, None, None),
    "VAD": TaskSpec("VAD", len(VAD_NAMES), None, None, names=VAD_NAMES),  # EMENet-VA only
}


def task_spec(task: "str | TaskSpec", num_classes: int | None = None) -> TaskSpec:
    """The TaskSpec of `task` (a name, or a spec passed through), for a multiclass head of
    `num_classes` classes when given; unknown names raise EMENetInputError.

    >>> task_spec("EXPR", 8).num_logits, task_spec("AU").kind.value
    (8, 'multilabel')
    """
    spec = task if isinstance(task, TaskSpec) else TASKS.get(task)
    if spec is None:
        raise EMENetInputError(f"unknown task {task!r}; valid tasks are {list(TASKS)}")
    if num_classes is not None and spec.class_variants and int(num_classes) != spec.num_logits:
        spec = spec.with_classes(num_classes)
    return spec


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
    return TASKS["EXPR"].with_classes(check_expr_classes(num_classes)).names


def check_expr_classes(num_classes: int) -> int:
    """`num_classes` if it is 7 or 8, else EMENetInputError."""
    if int(num_classes) not in EXPR_CLASS_COUNTS:
        raise EMENetInputError(f"expected {' or '.join(map(str, EXPR_CLASS_COUNTS))} expression classes, "
                               f"got {num_classes}")
    return int(num_classes)


def num_logits(task: str, num_expr_classes: int = len(EXPR_NAMES)) -> int:
    """Logit width of a task's head; EXPR's follows the model's class count."""
    spec = TASKS[task]
    if spec.class_variants:
        return spec.with_classes(check_expr_classes(num_expr_classes)).num_logits
    return spec.num_logits


def validate_tasks(tasks: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Return `tasks` in canonical order, raising ValueError on unknown or repeated names."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise EMENetInputError(f"unknown task(s) {unknown}; valid tasks are {list(TASKS)}")
    if len(set(tasks)) != len(tasks):
        raise EMENetInputError(f"repeated task in {list(tasks)}")
    return tuple(t for t in ORIGINAL_TASK_ORDER if t in tasks)
