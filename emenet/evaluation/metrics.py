"""ABAW challenge metrics (numpy), per release, and thin accumulators for whole-set scores.

2nd ABAW (2021; reference README, section 2): AU = 0.5 * mean F1 over the 12 AUs + 0.5 *
accuracy over all AU decisions; EXPR = 0.67 * macro F1 over the 7 classes + 0.33 *
accuracy; VA = CCC (population form) of valence and of arousal. The per-epoch total the
original logged (`total_score`) adds the AU score, the EXPR score and the *sum* of the two CCCs.
3rd ABAW on (2022-2025): AU = mean F1 over the 12 AUs, EXPR = macro F1 over the 8 classes
(with `Other`), VA = mean of the valence and arousal CCC; the multi-task challenge scores their
sum, and so does `abaw3_score` over the tasks present.
Unannotated labels (AU/EXPR -1, VA -5 or NaN) are masked out before any metric.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from emenet.errors import EMENetInputError
from emenet.tasks import EMOTION_TASKS, EXPR_NAMES, TASKS, TaskKind, TaskSpec, check_expr_classes, task_spec

# Challenge score weights (ABAW 2021).
AU_F1_WEIGHT, AU_ACCURACY_WEIGHT = 0.5, 0.5
EXPR_F1_WEIGHT, EXPR_ACCURACY_WEIGHT = 0.67, 0.33


def _to_numpy(x: Any) -> np.ndarray:
    """numpy view of an array, list or torch tensor (without importing torch here)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _check_shape(name: str, what: str, x: np.ndarray, shape: tuple[int | None, ...]) -> None:
    if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
        expected = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"{name}: expected {what} of shape {expected}, got {x.shape}")


def _check_pair(name: str, pred: np.ndarray, labels: np.ndarray, frame_shape: tuple[int, ...]) -> None:
    _check_shape(name, "predictions", pred, (None, *frame_shape))
    _check_shape(name, "labels", labels, (None, *frame_shape))
    if pred.shape[0] != labels.shape[0]:
        raise ValueError(f"{name}: expected as many predictions as labels, got {pred.shape[0]} and {labels.shape[0]}")


def _check_values(name: str, what: str, x: np.ndarray, allowed: Iterable[int]) -> None:
    allowed = set(allowed)
    found = set(np.unique(x).tolist())
    if not found <= allowed:
        raise ValueError(f"{name}: expected {what} in {sorted(allowed)}, got {sorted(found - allowed)[:5]}")


def ccc(x: Any, y: Any) -> float:
    """Concordance correlation coefficient, population form (variances and covariance over n).

    NaN when both inputs are constant and equal (0 / 0).

    >>> round(ccc([1, 2, 3], [1, 2, 4]), 6)  # 2 * 1 / (2/3 + 14/9 + 1/9) = 6/7
    0.857143
    """
    x = _to_numpy(x).astype(np.float64)
    y = _to_numpy(y).astype(np.float64)
    _check_shape("ccc", "x", x, (None,))
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"ccc: expected two non-empty 1-D arrays of the same length, got {x.shape} and {y.shape}")
    mean_x, mean_y = x.mean(), y.mean()
    cov = np.mean((x - mean_x) * (y - mean_y))
    denominator = x.var() + y.var() + (mean_x - mean_y) ** 2  # np.var: ddof 0
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(2.0 * cov / denominator)


def au_metrics(pred: Any, labels: Any) -> dict[str, Any]:
    """AU challenge metrics of (N, 12) 0/1 predictions against (N, 12) labels (-1 = unannotated).

    f1_per_au: binary F1 of each AU over its annotated frames (NaN for an AU with none);
    f1: their mean over annotated AUs; accuracy: over all annotated AU decisions;
    score = 0.5 * f1 + 0.5 * accuracy.
    """
    return _multilabel_metrics(TASKS["AU"], pred, labels)


def expr_metrics(pred: Any, labels: Any, num_classes: int = len(EXPR_NAMES)) -> dict[str, Any]:
    """EXPR challenge metrics of (N,) class predictions against (N,) labels (-1 = unannotated).

    f1: macro F1 over all `num_classes` classes (7, or 8 with `Other`; a class absent from labels
    and predictions counts 0); score = 0.67 * f1 + 0.33 * accuracy (the 2nd ABAW's).
    """
    return _multiclass_metrics(TASKS["EXPR"].with_classes(check_expr_classes(num_classes)), pred, labels)


def va_metrics(pred: Any, labels: Any) -> dict[str, float]:
    """VA challenge metrics of (N, 2) predictions against (N, 2) labels (rows with -5/NaN excluded).

    score = ccc_valence + ccc_arousal, the sum the original logged; ccc_mean is the
    challenge's reported mean.
    """
    return _binned_regression_metrics(TASKS["VA"], pred, labels)


def _multilabel_metrics(spec: TaskSpec, pred: Any, labels: Any) -> dict[str, Any]:
    """au_metrics for any multilabel task: per-unit F1, their mean, accuracy over all decisions."""
    name, missing = f"{spec.name.lower()}_metrics", spec.missing_value
    pred, labels = _to_numpy(pred), _to_numpy(labels)
    _check_pair(name, pred, labels, spec.frame_shape)
    _check_values(name, "predictions", pred, (0, 1))
    _check_values(name, "labels", labels, (0, 1, int(missing)))
    valid = spec.annotated(labels)
    if not valid.any():
        raise ValueError(f"{name}: expected at least one annotated {spec.name} entry, got none")
    f1_per_au = np.full(len(spec.names), np.nan)
    for j in range(len(spec.names)):
        v = valid[:, j]
        if v.any():
            f1_per_au[j] = f1_score(labels[v, j], pred[v, j], labels=[0, 1], pos_label=1, average="binary",
                                    zero_division=0)
    f1 = float(np.nanmean(f1_per_au))
    accuracy = float(accuracy_score(labels[valid], pred[valid]))
    return {"f1_per_au": f1_per_au, "f1": f1, "accuracy": accuracy,
            "score": AU_F1_WEIGHT * f1 + AU_ACCURACY_WEIGHT * accuracy}


def _multiclass_metrics(spec: TaskSpec, pred: Any, labels: Any) -> dict[str, Any]:
    """expr_metrics for any multiclass task: macro F1 over all of the spec's classes, accuracy."""
    name, missing = f"{spec.name.lower()}_metrics", spec.missing_value
    pred, labels = _to_numpy(pred), _to_numpy(labels)
    _check_pair(name, pred, labels, spec.frame_shape)
    classes = list(range(spec.num_logits))
    _check_values(name, "predictions", pred, classes)
    _check_values(name, "labels", labels, [*classes, int(missing)])
    valid = spec.annotated(labels)
    if not valid.any():
        raise ValueError(f"{name}: expected at least one annotated frame, got none")
    y_true, y_pred = labels[valid], pred[valid]
    f1_per_class = f1_score(y_true, y_pred, labels=classes, average=None, zero_division=0)
    f1 = float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0))
    accuracy = float(accuracy_score(y_true, y_pred))
    return {"f1_per_class": np.asarray(f1_per_class, dtype=np.float64), "f1": f1, "accuracy": accuracy,
            "score": EXPR_F1_WEIGHT * f1 + EXPR_ACCURACY_WEIGHT * accuracy}


def _binned_regression_metrics(spec: TaskSpec, pred: Any, labels: Any) -> dict[str, float]:
    """va_metrics for any regression task: CCC per dimension, their mean and (as `score`) their sum."""
    name = f"{spec.name.lower()}_metrics"
    pred, labels = _to_numpy(pred).astype(np.float64), _to_numpy(labels).astype(np.float64)
    _check_pair(name, pred, labels, spec.frame_shape)
    valid = spec.annotated(labels)
    if not valid.any():
        raise ValueError(f"{name}: expected at least one annotated frame, got none")
    if not np.isfinite(pred[valid]).all():
        raise ValueError(f"{name}: expected finite predictions, got NaN or inf")
    per_dim = {f"ccc_{dim}": ccc(pred[valid, k], labels[valid, k]) for k, dim in enumerate(spec.names)}
    return {**per_dim, "ccc_mean": float(np.mean(list(per_dim.values()))), "score": sum(per_dim.values())}


# Per kind: the challenge metrics, and the 3rd ABAW's measure among them.
_KIND_METRICS = {TaskKind.MULTILABEL: _multilabel_metrics, TaskKind.MULTICLASS: _multiclass_metrics,
                 TaskKind.BINNED_REGRESSION: _binned_regression_metrics}
_KIND_ABAW3_MEASURES = {TaskKind.MULTILABEL: "f1", TaskKind.MULTICLASS: "f1", TaskKind.BINNED_REGRESSION: "ccc_mean"}
METRIC_TASKS: tuple[str, ...] = tuple(t for t in EMOTION_TASKS if TASKS[t].kind in _KIND_METRICS)


def task_metrics(task: str | TaskSpec, pred: Any, labels: Any, num_classes: int | None = None) -> dict[str, Any]:
    """Challenge metrics of one task (a name, or any TaskSpec of a kind with metrics); a
    multiclass task scores over `num_classes` classes when given (EXPR: 7 or 8).

    >>> task_metrics("EXPR", [0, 7], [0, 7], num_classes=8)["accuracy"]
    1.0
    """
    spec = _check_task(task)
    if num_classes is not None and spec.class_variants:
        spec = spec.with_classes(num_classes)
    return _KIND_METRICS[spec.kind](spec, pred, labels)


def _check_task(task: str | TaskSpec) -> TaskSpec:
    if isinstance(task, str) and task not in METRIC_TASKS:
        raise ValueError(f"unknown task {task!r}; tasks with metrics are {list(METRIC_TASKS)}")
    spec = task_spec(task)
    if spec.kind not in _KIND_METRICS:
        raise ValueError(f"unknown task {spec.name!r}; tasks with metrics are {list(METRIC_TASKS)}")
    return spec


def challenge_scores(predictions: Mapping[str, Any], labels: Mapping[str, Any],
                     num_expr_classes: int = len(EXPR_NAMES)) -> dict[str, dict[str, Any]]:
    """Per-task metric dicts for every task in `predictions` (which `labels` must also have).

    >>> s = challenge_scores({"EXPR": [0, 1]}, {"EXPR": [0, 1]})
    >>> s["EXPR"]["accuracy"], total_score(s) > 0
    (1.0, True)
    """
    missing = [t for t in predictions if t not in labels]
    if missing:
        raise ValueError(f"challenge_scores: expected labels for every predicted task, missing {missing}")
    for task in predictions:
        _check_task(task)
    return {task: task_metrics(task, predictions[task], labels[task], num_expr_classes)
            for task in EMOTION_TASKS if task in predictions}


def total_score(scores: Mapping[str, Mapping[str, Any]]) -> float:
    """The original's per-epoch total: AU score + EXPR score + (CCC valence + CCC arousal), over tasks present."""
    for task in scores:
        _check_task(task)
    return float(sum(s["score"] for s in scores.values()))


# The 3rd ABAW's (and later releases') measure of each task, as the key of its metric dict.
ABAW3_TASK_MEASURES: dict[str, str] = {t: _KIND_ABAW3_MEASURES[TASKS[t].kind] for t in METRIC_TASKS}


def abaw3_score(scores: Mapping[str, Mapping[str, Any]]) -> float:
    """3rd ABAW on: AU mean F1 + EXPR macro F1 + VA mean CCC, over the tasks present (the
    multi-task challenge's score when all three are; one task's challenge score when alone).

    >>> abaw3_score({"AU": {"f1": 0.5}, "VA": {"ccc_mean": 0.25}})
    0.75
    """
    for task in scores:
        _check_task(task)
    return float(sum(s[ABAW3_TASK_MEASURES[task]] for task, s in scores.items()))


# The flat key that picks the best epoch on each release's data (see `selection_metric`).
RELEASE_METRICS: dict[str, str] = {"abaw2": "total_score", "abaw3": "abaw3_score", "abaw5": "abaw3_score",
                                   "abaw6": "abaw3_score", "mtl": "abaw3_score"}


def selection_metric(metric: str | None, release: str, available: Iterable[str] | None = None) -> str:
    """The flat score key that ranks epochs: `metric` (a release name or a flat key such as
    `EXPR_f1`), or the measure of the data's `release` when `metric` is None or "auto".

    >>> selection_metric(None, "abaw3"), selection_metric("abaw2", "mtl"), selection_metric("EXPR_f1", "abaw2")
    ('abaw3_score', 'total_score', 'EXPR_f1')
    """
    if metric in (None, "", "auto"):
        return RELEASE_METRICS[release]
    if metric in RELEASE_METRICS:
        return RELEASE_METRICS[metric]
    if available is not None and metric not in set(available):
        raise EMENetInputError(f"--metric {metric!r} is not a score this validation computes; use a release "
                               f"({', '.join(RELEASE_METRICS)}), auto, or one of {sorted(available)[:12]}...")
    return metric


def check_metric_name(metric: str) -> str:
    """`--metric` before any training: auto, a release, or a validation score's name (`EXPR_f1`, ...)."""
    task_score = rf"({'|'.join(METRIC_TASKS)})_\w+"
    if metric in ("auto", *RELEASE_METRICS, "total_score", "abaw3_score") or re.fullmatch(task_score, metric):
        return metric
    raise EMENetInputError(f"--metric {metric!r}: expected auto, a release ({', '.join(RELEASE_METRICS)}), "
                           "total_score, abaw3_score or a task's score such as EXPR_f1 or VA_ccc_mean")


# Metric keys of per-unit arrays, flattened with the task's unit or class names (per class count).
_PER_UNIT_KEYS = ("f1_per_au", "f1_per_class")


def flatten_scores(scores: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """Per-task metric dicts -> one flat dict of floats for logs and JSON, with `total_score`.

    Keys are "<TASK>_<metric>" ("AU_f1", "EXPR_score", "VA_ccc_valence", ...); per-AU and
    per-class F1 become "AU_f1_AU12", "EXPR_f1_Happiness", ...; `total_score` is the 2nd ABAW
    total the original logged, `abaw3_score` the 3rd ABAW on's sum.

    >>> flat = flatten_scores(challenge_scores({"VA": [[0.1, 0.2], [0.3, 0.1]]}, {"VA": [[0.1, 0.2], [0.3, 0.1]]}))
    >>> flat["VA_score"], flat["total_score"], flat["abaw3_score"]
    (2.0, 2.0, 1.0)
    """
    flat: dict[str, float] = {}
    for task, metrics in scores.items():
        for key, value in metrics.items():
            if key in _PER_UNIT_KEYS:
                names = task_spec(task, len(value)).names
                flat.update({f"{task}_f1_{name}": float(v) for name, v in zip(names, value)})
            else:
                flat[f"{task}_{key}"] = float(value)
    flat["total_score"] = total_score(scores)
    flat["abaw3_score"] = abaw3_score(scores)
    return flat


class TaskMetricAccumulator:
    """Collects one task's (predictions, labels) batches and scores the whole set at the end.

    Batches may have any leading shape (e.g. (B, T, 12)); they are flattened to frames.

    >>> acc = TaskMetricAccumulator("EXPR")
    >>> acc.update([0, 1], [0, 1]); acc.update([2], [3])
    >>> acc.compute()["accuracy"]
    0.6666666666666666
    """

    def __init__(self, task: str | TaskSpec, num_expr_classes: int = len(EXPR_NAMES)) -> None:
        spec = _check_task(task)
        self.num_expr_classes = check_expr_classes(num_expr_classes)
        self.spec = task_spec(spec, self.num_expr_classes)
        self.task = spec.name
        self._preds: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def update(self, pred: Any, labels: Any) -> None:
        pred, labels = _to_numpy(pred), _to_numpy(labels)
        frame_shape = self.spec.frame_shape
        for what, x in (("predictions", pred), ("labels", labels)):
            if x.shape[x.ndim - len(frame_shape):] != frame_shape or x.ndim < len(frame_shape) + 1:
                raise ValueError(f"{self.task} accumulator: expected {what} of shape (..., "
                                 f"{', '.join(map(str, frame_shape))}), got {x.shape}")
        pred, labels = pred.reshape(-1, *frame_shape), labels.reshape(-1, *frame_shape)
        if pred.shape[0] != labels.shape[0]:
            raise ValueError(f"{self.task} accumulator: expected as many predictions as labels, "
                             f"got {pred.shape[0]} and {labels.shape[0]}")
        self._preds.append(pred.copy())
        self._labels.append(labels.copy())

    def __len__(self) -> int:
        return sum(len(p) for p in self._preds)

    def compute(self) -> dict[str, Any]:
        if not self._preds:
            raise ValueError(f"{self.task} accumulator: no batches to score; call update() first")
        pred, labels = np.concatenate(self._preds), np.concatenate(self._labels)
        return _KIND_METRICS[self.spec.kind](self.spec, pred, labels)

    def reset(self) -> None:
        self._preds, self._labels = [], []


class ChallengeMetrics:
    """One TaskMetricAccumulator per task, for a whole validation set.

    compute() gives the flat dict of floats that runs log (see flatten_scores), over the
    tasks that received frames; task_scores() gives the per-task dicts.

    >>> m = ChallengeMetrics()
    >>> m.update("VA", [[0.1, 0.2], [0.3, 0.1]], [[0.1, 0.2], [0.3, 0.1]])
    >>> m.update("VA", [[0.5, 0.4]], [[0.5, 0.4]])
    >>> m.compute()["total_score"]  # only VA has frames: CCC valence 1 + CCC arousal 1
    2.0
    """

    def __init__(self, tasks: Iterable[str] = EMOTION_TASKS, num_expr_classes: int = len(EXPR_NAMES)) -> None:
        self.tasks = tuple(tasks)
        self._accumulators = {task: TaskMetricAccumulator(task, num_expr_classes) for task in self.tasks}

    def update(self, task: str, pred: Any, labels: Any) -> None:
        """Add one batch of `task`'s predictions and labels (any leading shape)."""
        if task not in self._accumulators:
            raise ValueError(f"ChallengeMetrics: unknown task {task!r}; tracking {list(self.tasks)}")
        self._accumulators[task].update(pred, labels)

    def task_scores(self) -> dict[str, dict[str, Any]]:
        return {task: acc.compute() for task, acc in self._accumulators.items() if len(acc)}

    def compute(self) -> dict[str, float]:
        return flatten_scores(self.task_scores())

    def total(self) -> float:
        return total_score(self.task_scores())

    def reset(self) -> None:
        for acc in self._accumulators.values():
            acc.reset()
