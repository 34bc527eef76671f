"""Calibration of the predictive distributions: ECE, NLL, Brier, temperature scaling, MC dropout.

Each task is scored as the heads define it:

- EXPR: a 7-class categorical. ECE is top-label: confidence = max probability, correct =
  argmax == label. NLL = -log p(label); Brier = sum over classes of (p - one-hot)^2.
- AU: 12 binary problems. ECE is the binary one over p(positive): per bin, |mean p - frequency
  of positives|. NLL is the binary cross-entropy; Brier the squared error (p - y)^2. Scores are
  per AU and averaged over the AUs with annotations; `ece_pooled` pools every AU decision
  (the reliability diagram's view).
- VA: valence and arousal, each a 20-class problem against the label digitised by
  `emenet.decoding.va_digitize` (the `cce` target), scored like EXPR and averaged over the two.

Scores average over frames; unannotated entries (AU/EXPR -1, VA -5 or NaN, as in
`emenet.evaluation.metrics`) are left out. Bins are 10 equal-width intervals [0, .1), ..., [.8, .9),
[.9, 1.0] (the last one closed). torchmetrics' `*_calibration_error` bins the same way except
that a confidence of exactly 1.0 gets a bin of its own; away from 1.0 the two agree exactly.
Probabilities are clipped to [PROB_EPS, 1] before a logarithm, so a saturated float32 softmax
costs at most -log(PROB_EPS) = 27.6 nats instead of infinity.

Temperature scaling (Guo et al. 2017) divides logits by a temperature fitted by minimising NLL
on held-out frames: one for EXPR, one per VA dimension, and one shared by all 12 AUs (AUs are
sparse, so most have few positives on a validation half; `au_per_unit=True` fits 12). MC
dropout (Gal & Ghahramani 2016) keeps the dropout between each GRU and its decoder active at
test time; its passes are stacked like ensemble members, so `emenet.uncertainty` applies.

    >>> probs = np.array([[0.9, 0.1], [0.6, 0.4]]); labels = np.array([0, 1])
    >>> round(multiclass_ece(probs, labels), 6)  # bins .9: |1 - .9| * 1/2, .6: |0 - .6| * 1/2
    0.35
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emenet.decoding import task_probs, va_digitize
from emenet.tasks import TASKS, TaskKind, TaskSpec, task_spec

log = logging.getLogger(__name__)

CALIBRATION_TASKS: tuple[str, ...] = ("EXPR", "AU", "VA")
N_BINS = 10
# Floor of a probability before its logarithm (see the module docstring).
PROB_EPS = 1e-12
# Range a fitted temperature is clipped to: NLL keeps falling as T -> 0 on separable data.
TEMPERATURE_RANGE = (1e-2, 1e2)



# --- input checks ------------------------------------------------------------------------------

def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _check_probabilities(name: str, p: np.ndarray) -> None:
    if p.size and not (np.isfinite(p).all() and p.min() >= 0.0 and p.max() <= 1.0):
        raise ValueError(f"{name}: expected probabilities in [0, 1], got values in [{np.nanmin(p)}, {np.nanmax(p)}]"
                         f"{' and NaN/inf' if not np.isfinite(p).all() else ''}")


def _check_multiclass(name: str, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"{name}: expected probabilities of shape (N, K) with K >= 2, got {probs.shape}")
    if labels.shape != (probs.shape[0],):
        raise ValueError(f"{name}: expected labels of shape ({probs.shape[0]},), got {labels.shape}")
    if probs.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one frame, got none")
    _check_probabilities(name, probs)
    classes = labels.astype(np.int64)
    if (classes != labels).any() or classes.min() < 0 or classes.max() >= probs.shape[1]:
        raise ValueError(f"{name}: expected integer labels in 0..{probs.shape[1] - 1}, "
                         f"got {sorted(set(labels.tolist()) - set(range(probs.shape[1])))[:5]}")
    return classes


def _check_binary(name: str, probs: np.ndarray, labels: np.ndarray) -> None:
    if probs.ndim != 1 or labels.shape != probs.shape:
        raise ValueError(f"{name}: expected 1-D probabilities and labels of one length, "
                         f"got {probs.shape} and {labels.shape}")
    if probs.size == 0:
        raise ValueError(f"{name}: expected at least one frame, got none")
    _check_probabilities(name, probs)
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError(f"{name}: expected 0/1 labels, got {sorted(set(labels.tolist()) - {0.0, 1.0})[:5]}")


# --- reliability bins and ECE ------------------------------------------------------------------

@dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width bins of (confidence, outcome) pairs: what ECE sums and a reliability diagram draws.

    `confidence` and `accuracy` are per-bin means (NaN in an empty bin); for binary problems
    `accuracy` is the observed frequency of positives.
    """

    edges: np.ndarray  # (n_bins + 1,)
    counts: np.ndarray  # (n_bins,)
    confidence: np.ndarray  # (n_bins,)
    accuracy: np.ndarray  # (n_bins,)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def ece(self) -> float:
        """Sum over bins of |accuracy - confidence| weighted by the bin's share of samples."""
        filled = self.counts > 0
        weights = self.counts[filled] / self.counts.sum()
        return float(np.sum(weights * np.abs(self.accuracy[filled] - self.confidence[filled])))


def reliability_bins(confidence: Any, outcome: Any, n_bins: int = N_BINS) -> ReliabilityBins:
    """Bin confidences in [0, 1] into `n_bins` equal-width bins [lo, hi), the last one closed.

    >>> b = reliability_bins([0.05, 0.95, 1.0], [0, 1, 1], n_bins=10)
    >>> b.counts.tolist(), round(b.ece, 6)  # 1/3 * |0 - .05| + 2/3 * |1 - .975|
    ([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0], 0.033333)
    """
    confidence, outcome = _to_numpy(confidence), _to_numpy(outcome)
    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"reliability_bins: expected n_bins >= 1, got {n_bins}")
    if confidence.ndim != 1 or outcome.shape != confidence.shape or confidence.size == 0:
        raise ValueError(f"reliability_bins: expected non-empty 1-D confidence and outcome of one length, "
                         f"got {confidence.shape} and {outcome.shape}")
    _check_probabilities("reliability_bins", confidence)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(index, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=n_bins) / counts
        accuracy = np.bincount(index, weights=outcome, minlength=n_bins) / counts
    return ReliabilityBins(edges, counts, mean_confidence, accuracy)


def top_label(probs: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) of the predicted class: max probability and argmax == label, per row."""
    probs, labels = _to_numpy(probs), _to_numpy(labels)
    classes = _check_multiclass("top_label", probs, labels)
    return probs.max(axis=1), (probs.argmax(axis=1) == classes).astype(np.float64)


def multiclass_ece(probs: Any, labels: Any, n_bins: int = N_BINS) -> float:
    """Top-label expected calibration error of (N, K) probabilities against (N,) class labels."""
    return reliability_bins(*top_label(probs, labels), n_bins=n_bins).ece


def binary_ece(probs: Any, labels: Any, n_bins: int = N_BINS) -> float:
    """Binary ECE of (N,) probabilities of the positive class against (N,) 0/1 labels."""
    probs, labels = _to_numpy(probs), _to_numpy(labels)
    _check_binary("binary_ece", probs, labels)
    return reliability_bins(probs, labels, n_bins=n_bins).ece


# --- NLL and Brier -----------------------------------------------------------------------------

def multiclass_nll(probs: Any, labels: Any) -> float:
    """Mean -log p(label) of (N, K) probabilities (clipped at PROB_EPS) against (N,) labels."""
    probs, labels = _to_numpy(probs), _to_numpy(labels)
    classes = _check_multiclass("multiclass_nll", probs, labels)
    p = probs[np.arange(len(classes)), classes]
    return float(-np.mean(np.log(np.clip(p, PROB_EPS, 1.0))))


def binary_nll(probs: Any, labels: Any) -> float:
    """Mean binary cross-entropy of (N,) positive-class probabilities against (N,) 0/1 labels."""
    probs, labels = _to_numpy(probs), _to_numpy(labels)
    _check_binary("binary_nll", probs, labels)
    p = np.where(labels == 1.0, probs, 1.0 - probs)
    return float(-np.mean(np.log(np.clip(p, PROB_EPS, 1.0))))


def multiclass_brier(probs: Any, labels: Any) -> float:
    """Mean over rows of sum over classes of (p - one-hot(label))^2; 0 (perfect) to 2.

    >>> multiclass_brier([[0.5, 0.5, 0.0]], [0])  # 0.25 + 0.25
    0.5
    """
    probs, labels = _to_numpy(probs), _to_numpy(labels)
    classes = _check_multiclass("multiclass_brier", probs, labels)
    one_hot = np.eye(probs.shape[1])[classes]
    return float(np.mean(np.sum((probs - one_hot) ** 2, axis=1)))


def binary_brier(probs: Any, labels: Any) -> float:
    """Mean (p - y)^2 of (N,) positive-class probabilities against (N,) 0/1 labels (sklearn's brier_score_loss)."""
    probs, labels = _to_numpy(probs), _to_numpy(labels)
    _check_binary("binary_brier", probs, labels)
    return float(np.mean((probs - labels) ** 2))


def multiclass_calibration(probs: Any, labels: Any, n_bins: int = N_BINS) -> dict[str, float]:
    """{"ece", "nll", "brier"} of (N, K) probabilities against (N,) labels."""
    return {"ece": multiclass_ece(probs, labels, n_bins), "nll": multiclass_nll(probs, labels),
            "brier": multiclass_brier(probs, labels)}


def binary_calibration(probs: Any, labels: Any, n_bins: int = N_BINS) -> dict[str, float]:
    """{"ece", "nll", "brier"} of (N,) positive-class probabilities against (N,) 0/1 labels."""
    return {"ece": binary_ece(probs, labels, n_bins), "nll": binary_nll(probs, labels),
            "brier": binary_brier(probs, labels)}


# --- per task ----------------------------------------------------------------------------------

def _check_task_inputs(task: str | TaskSpec, probs: np.ndarray, labels: np.ndarray) -> TaskSpec:
    if isinstance(task, str) and task not in CALIBRATION_TASKS:
        raise ValueError(f"unknown task {task!r}; tasks with calibration scores are {list(CALIBRATION_TASKS)}")
    spec = task_spec(task)
    name = spec.name
    shapes = spec.prob_shapes
    expected = next((s for s in shapes if probs.ndim == 1 + len(s) and probs.shape[-1] == s[-1]), shapes[0])
    if probs.ndim != 1 + len(expected) or probs.shape[1:] != expected:
        shape = ", ".join(map(str, expected))
        raise ValueError(f"{name} calibration: expected probabilities of shape (N, {shape}), got {probs.shape}")
    if labels.shape != (probs.shape[0], *spec.frame_shape):
        raise ValueError(f"{name} calibration: expected labels of shape {(probs.shape[0], *spec.frame_shape)}, "
                         f"got {labels.shape}")
    return spec


def _multiclass_problems(spec: TaskSpec, probs: np.ndarray, labels: np.ndarray) -> dict:
    valid = spec.annotated(labels)
    return {spec.name: (probs[valid], labels[valid])} if valid.any() else {}


def _multilabel_problems(spec: TaskSpec, probs: np.ndarray, labels: np.ndarray) -> dict:
    valid = spec.annotated(labels)  # (N, units)
    return {name: (probs[valid[:, j], j], labels[valid[:, j], j]) for j, name in enumerate(spec.names)
            if valid[:, j].any()}


def _binned_problems(spec: TaskSpec, probs: np.ndarray, labels: np.ndarray) -> dict:
    valid = spec.annotated(labels)
    if not valid.any():
        return {}
    classes = va_digitize(torch.from_numpy(labels[valid]), spec.num_bins).numpy()  # (n, 2)
    return {name: (probs[valid, k], classes[:, k].astype(np.float64)) for k, name in enumerate(spec.names)}


@dataclass(frozen=True)
class _CalibrationKind:
    """How a kind of task is split into problems and scored: `key` names the per-problem
    scores ({key}, {name}), None when the task is one problem; `pooled` adds `ece_pooled`."""

    problems: Callable[[TaskSpec, np.ndarray, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]
    score: Callable[..., dict[str, float]]
    key: str | None
    pooled: bool = False


_KINDS = {TaskKind.MULTICLASS: _CalibrationKind(_multiclass_problems, multiclass_calibration, None),
          TaskKind.MULTILABEL: _CalibrationKind(_multilabel_problems, binary_calibration, "{key}_{name}", pooled=True),
          TaskKind.BINNED_REGRESSION: _CalibrationKind(_binned_problems, multiclass_calibration, "{name}_{key}")}


def task_problems(task: str | TaskSpec, probs: Any, labels: Any) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The annotated (probabilities, labels) of each problem a task's calibration is scored on.

    EXPR: {"EXPR": ((n, 7), (n,))}; AU: {"AU1": ((n,), (n,)), ...} binary, AUs without any
    annotation left out; VA: {"valence": ((n, 20), (n,)), "arousal": ...} with digitised labels.
    Labels use the challenge's missing values (AU/EXPR -1, VA -5 or NaN), as in emenet.evaluation.metrics.
    """
    probs, labels = _to_numpy(probs), _to_numpy(labels)
    spec = _check_task_inputs(task, probs, labels)
    return _KINDS[spec.kind].problems(spec, probs, labels)


def task_calibration(task: str, probs: Any, labels: Any, n_bins: int = N_BINS) -> dict[str, float]:
    """Calibration scores of one task's probabilities against its labels (missing values left out).

    EXPR: {"ece", "nll", "brier"}. AU: their means over the annotated AUs, the same per AU
    ("ece_AU1", ...) and "ece_pooled" over all AU decisions. VA: their means over valence and
    arousal, and per dimension ("valence_ece", ...). Empty dict when nothing is annotated.

    >>> round(task_calibration("EXPR", np.full((2, 7), 1 / 7), [3, -1])["nll"], 6)  # log 7; the -1 row is left out
    1.94591
    """
    problems = task_problems(task, probs, labels)
    if not problems:
        return {}
    kind = _KINDS[task_spec(task).kind]
    per_problem = {name: kind.score(p, y, n_bins) for name, (p, y) in problems.items()}
    if kind.key is None:
        return next(iter(per_problem.values()))
    out = {key: float(np.mean([s[key] for s in per_problem.values()])) for key in ("ece", "nll", "brier")}
    for name, scores in per_problem.items():
        out.update({kind.key.format(key=key, name=name): value for key, value in scores.items()})
    if kind.pooled:
        out["ece_pooled"] = reliability_bins(*pooled_binary(problems), n_bins=n_bins).ece
    return out


def pooled_binary(problems: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """All AU decisions as one binary problem: concatenated (probabilities, labels)."""
    return (np.concatenate([p for p, _ in problems.values()]), np.concatenate([y for _, y in problems.values()]))


def calibration_scores(probs: Mapping[str, Any], labels: Mapping[str, Any], n_bins: int = N_BINS) -> dict[str, float]:
    """Flat "<TASK>_<score>" dict (e.g. "EXPR_ece", "AU_nll", "VA_valence_brier") over the tasks in `probs`.

    Probabilities as from decoding.task_probs (AU (N, 12), EXPR (N, 7), VA (N, 2, 20)); labels
    as for emenet.evaluation.metrics (AU (N, 12), EXPR (N,), VA (N, 2), with their missing values).
    """
    missing = [t for t in probs if t not in labels]
    if missing:
        raise ValueError(f"calibration_scores: expected labels for every task, missing {missing}")
    flat = {}
    for task in CALIBRATION_TASKS:
        if task in probs:
            scores = task_calibration(task, probs[task], labels[task], n_bins)
            flat.update({f"{task}_{k}": v for k, v in scores.items()})
    return flat


def task_reliability(task: str, probs: Any, labels: Any, n_bins: int = N_BINS) -> dict[str, ReliabilityBins]:
    """Reliability bins to draw: EXPR top-label, AU pooled over all AUs, valence and arousal top-label."""
    problems = task_problems(task, probs, labels)
    if not problems:
        return {}
    if _KINDS[task_spec(task).kind].pooled:
        return {f"{task_spec(task).name} (pooled)": reliability_bins(*pooled_binary(problems), n_bins=n_bins)}
    return {name: reliability_bins(*top_label(p, y), n_bins=n_bins) for name, (p, y) in problems.items()}


# --- temperature scaling -----------------------------------------------------------------------

@dataclass(frozen=True)
class TemperatureScaling:
    """Fitted temperatures per task head; `scale` divides logits by them.

    EXPR (1,), AU (1,) shared or (12,) per AU, VA (2,) for valence and arousal. Tasks without a
    temperature pass through unchanged. Decisions of AU (logit > 0) and EXPR (argmax) do not
    change; VA's expectation and every probability do.

    >>> ts = TemperatureScaling({"EXPR": np.array([2.0])})
    >>> ts.scale("EXPR", torch.tensor([[2.0, 0.0]]))
    tensor([[1., 0.]])
    """

    temperatures: dict[str, np.ndarray]

    def scale(self, task: str, logits: torch.Tensor) -> torch.Tensor:
        if task not in self.temperatures:
            return logits
        t = torch.as_tensor(self.temperatures[task], dtype=logits.dtype, device=logits.device)
        if TASKS[task].kind is TaskKind.BINNED_REGRESSION:  # one temperature per dimension
            return (logits.unflatten(-1, TASKS[task].prob_shape) / t[:, None]).flatten(-2)  # (..., 2, 20) -> (..., 40)
        return logits / t

    def scale_all(self, logits: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {task: self.scale(task, z) for task, z in logits.items()}

    def to_dict(self) -> dict[str, list[float]]:
        return {task: [float(v) for v in t] for task, t in self.temperatures.items()}


def fit_temperature(nll: Callable[[torch.Tensor], torch.Tensor], size: int = 1, max_iter: int = 100) -> np.ndarray:
    """Temperatures (size,) minimising `nll(temperatures)`, by L-BFGS over log T from T = 1.

    Optimising log T keeps T positive; the result is clipped to TEMPERATURE_RANGE.
    """
    log_t = torch.zeros(size, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe",
                                  tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = nll(log_t.exp())
        loss.backward()
        return loss

    optimizer.step(closure)
    temperatures = log_t.detach().exp().numpy()
    if not np.isfinite(temperatures).all():
        raise ValueError("fit_temperature: the optimisation diverged (non-finite temperature)")
    clipped = np.clip(temperatures, *TEMPERATURE_RANGE)
    if (clipped != temperatures).any():
        log.warning("fitted temperature %s clipped to %s", temperatures.tolist(), list(TEMPERATURE_RANGE))
    return clipped


_Nll = Callable[[torch.Tensor], torch.Tensor]


def _multiclass_nll(spec: TaskSpec, z: torch.Tensor, y: torch.Tensor, valid: torch.Tensor) -> _Nll:
    z, classes = z[valid], y[valid].long()
    return lambda t: F.cross_entropy(z / t, classes)


def _multilabel_nll(spec: TaskSpec, z: torch.Tensor, y: torch.Tensor, valid: torch.Tensor) -> _Nll:
    # a per-unit T of a unit without annotations gets no gradient and stays 1
    targets = y.clamp(min=0)
    return lambda t: F.binary_cross_entropy_with_logits(z / t, targets, reduction="none")[valid].mean()


def _binned_nll(spec: TaskSpec, z: torch.Tensor, y: torch.Tensor, valid: torch.Tensor) -> _Nll:
    z, classes = z[valid].unflatten(-1, spec.prob_shape), va_digitize(y[valid], spec.num_bins)  # (n, 2, 20), (n, 2)
    return lambda t: F.cross_entropy((z / t[:, None]).flatten(0, 1), classes.flatten())


# Per kind: the NLL as a function of the temperatures, and how many there are (per unit when asked).
_TEMPERATURE_NLLS = {TaskKind.MULTICLASS: (_multiclass_nll, lambda spec, per_unit: 1),
                     TaskKind.MULTILABEL: (_multilabel_nll, lambda spec, per_unit: len(spec.names) if per_unit else 1),
                     TaskKind.BINNED_REGRESSION: (_binned_nll, lambda spec, per_unit: len(spec.names))}


def _temperature_nll(task: str, logits: np.ndarray, labels: np.ndarray, au_per_unit: bool
                     ) -> tuple[_Nll | None, int]:
    """NLL of the annotated frames as a function of the task's temperatures (None if there are
    none), and the number of temperatures."""
    spec = TASKS[task]
    nll, size = _TEMPERATURE_NLLS[spec.kind]
    labels = labels.astype(np.float64)
    valid = spec.annotated(labels)
    if not valid.any():
        return None, size(spec, au_per_unit)
    z, y = torch.from_numpy(logits.astype(np.float64)), torch.from_numpy(labels)
    return nll(spec, z, y, torch.from_numpy(valid)), size(spec, au_per_unit)


def fit_temperature_scaling(logits: Mapping[str, Any], labels: Mapping[str, Any], au_per_unit: bool = False,
                            max_iter: int = 100) -> TemperatureScaling:
    """Fit temperatures per head on held-out frames: EXPR one, AU one (or 12), VA one per dimension.

    `logits`: task -> (N, C) raw logits; `labels` as for calibration_scores (missing values
    allowed). A task with no annotated frame keeps T = 1, with a warning.

    >>> ts = fit_temperature_scaling({"EXPR": 10 * np.eye(7)[[0, 1, 2, 3]]}, {"EXPR": np.array([0, 1, 2, 4])})
    >>> bool(ts.temperatures["EXPR"][0] > 1)  # one confident mistake in four: soften
    True
    """
    temperatures = {}
    for task in CALIBRATION_TASKS:
        if task not in logits:
            continue
        if task not in labels:
            raise ValueError(f"fit_temperature_scaling: expected labels for {task}")
        z, y = _to_numpy(logits[task]), _to_numpy(labels[task])
        spec = TASKS[task]
        if z.ndim != 2 or z.shape[1] not in spec.logit_widths or y.shape != (z.shape[0], *spec.frame_shape):
            raise ValueError(f"fit_temperature_scaling: expected {task} logits (N, {spec.num_logits}) and "
                             f"labels {('N', *spec.frame_shape)}, got {z.shape} and {y.shape}")
        nll, size = _temperature_nll(task, z, y, au_per_unit)
        if nll is None:
            log.warning("no annotated %s frame to fit a temperature on; keeping T = 1", task)
            temperatures[task] = np.ones(size)
            continue
        temperatures[task] = fit_temperature(nll, size, max_iter)
    return TemperatureScaling(temperatures)


# --- probabilities of several models (or passes) -----------------------------------------------

def stack_probs(logits_per_model: Sequence[Mapping[str, Any]], tasks: Sequence[str] = CALIBRATION_TASKS
                ) -> dict[str, torch.Tensor]:
    """task -> (M, ..., C) probabilities of M models' (or passes') logits, the stacks that
    `emenet.uncertainty.ensemble_task_uncertainty` takes (VA as (M, ..., 2, 20))."""
    if not logits_per_model:
        raise ValueError("stack_probs: expected at least one model's logits")
    present = [t for t in tasks if t in logits_per_model[0]]
    return {t: torch.stack([task_probs(t, torch.as_tensor(m[t])) for m in logits_per_model]) for t in present}


# --- MC dropout --------------------------------------------------------------------------------

DROPOUT_TYPES: tuple[type[nn.Module], ...] = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                                              nn.FeatureAlphaDropout)


def dropout_modules(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, DROPOUT_TYPES)]


@contextlib.contextmanager
def mc_dropout(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode everywhere except the dropout modules, for MC dropout; restores every mode on exit.

    Batch norm keeps its running statistics; only nn.Dropout (and its variants) sample masks.

    >>> from emenet.models import create_model
    >>> with mc_dropout(create_model("emenet_v")) as m:
    ...     m.tmodels[0].dropout.training, m.backbone.training
    (True, False)
    """
    dropouts = dropout_modules(model)
    if not dropouts:
        raise ValueError(f"mc_dropout: {type(model).__name__} has no dropout module to sample")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    for m in dropouts:
        m.train()
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


@torch.no_grad()
def mc_dropout_heads(model: nn.Module, features: torch.Tensor, passes: int, hidden: Sequence[Any] | None = None
                     ) -> tuple[list[dict[str, torch.Tensor]], list[Any]]:
    """`passes` stochastic runs of an EMENet's temporal heads on (B, T, 512) backbone features.

    `hidden` is one state per pass (carried across chunks of a video: each pass is one
    consistent stochastic model over time), or None to start fresh. Returns per pass the task
    -> logits (B, T, C), and the new states.
    """
    if passes < 1:
        raise ValueError(f"mc_dropout_heads: expected passes >= 1, got {passes}")
    hidden = list(hidden) if hidden is not None else [None] * passes
    if len(hidden) != passes:
        raise ValueError(f"mc_dropout_heads: expected {passes} hidden states, got {len(hidden)}")
    outputs = []
    with mc_dropout(model):
        for p in range(passes):
            logits, hidden[p] = model.forward_features(features, hidden[p])
            outputs.append(logits)
    return outputs, hidden


@torch.no_grad()
def mc_dropout_logits(model: nn.Module, frames: torch.Tensor, passes: int, hidden: Sequence[Any] | None = None
                      ) -> tuple[list[dict[str, torch.Tensor]], list[Any]]:
    """`passes` MC-dropout forward passes of an EMENet on frames (B, T, 3, 112, 112).

    The backbone has no dropout in EMENet, so it runs once in eval mode and the passes differ
    only in the dropout between each GRU and its decoder. Seed torch (or use
    `torch.random.fork_rng`) for reproducible masks. Probabilities of the passes:
    `stack_probs(outputs)`, ready for `ensemble_task_uncertainty`.

    >>> from emenet.models import create_model
    >>> outs, _ = mc_dropout_logits(create_model("emenet_v"), torch.rand(1, 2, 3, 112, 112), passes=3)
    >>> stack_probs(outs)["VA"].shape
    torch.Size([3, 1, 2, 2, 20])
    """
    if dropout_modules(model.backbone):
        hidden = list(hidden) if hidden is not None else [None] * passes
        outputs = []
        with mc_dropout(model):
            for p in range(passes):
                logits, hidden[p] = model(frames, hidden=hidden[p])
                outputs.append(logits)
        return outputs, hidden
    was_training = model.training
    model.eval()
    features = model.encode_frames(frames)  # (B, T, 512)
    model.train(was_training)
    return mc_dropout_heads(model, features, passes, hidden)
