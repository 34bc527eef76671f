"""Logits -> probabilities -> challenge predictions, exactly as the original decoded them.

Every function works on any leading shape (..., C), so frames (N, C) and clips (B, T, C)
go through the same code. The conventions (sigmoid > 0.5, argmax, the expectation over
`linspace(-1, 1, 20)`) are the original's; see section 3 of the reference README.
"""
from __future__ import annotations

import numpy as np
import torch

from emenet.tasks import AU_NAMES, EXPR_CLASS_COUNTS, NUM_VA_BINS, TASKS, TaskKind, TaskSpec, task_spec

DECODABLE_TASKS: tuple[str, ...] = tuple(t for t, spec in TASKS.items() if spec.kind is not TaskKind.AUXILIARY)

# AU decision threshold on the sigmoid output (the original's `> 0.5`).
AU_THRESHOLD = 0.5

# tasks.VA_BIN_CENTRES and tasks.VA_BIN_EDGES (float32 there) kept in float64 and cast to
# the input's dtype: float32 inputs see exactly the tasks constants, float64 ones lose no
# precision, and a label lying exactly on an edge (0.1, 0.5, ...) falls into the same class
# as with the original's np.digitize over float64 labels.
_VA_CENTRES_F64 = np.linspace(-1.0, 1.0, NUM_VA_BINS)
_VA_EDGES_F64 = np.linspace(-1.0, 1.0, NUM_VA_BINS + 1)


def _check_last_dim(name: str, x: torch.Tensor, size: int | tuple[int, ...]) -> None:
    sizes = size if isinstance(size, tuple) else (size,)
    if x.dim() < 1 or x.shape[-1] not in sizes:
        raise ValueError(f"{name}: expected shape (..., {' or '.join(map(str, sizes))}), got {tuple(x.shape)}")


def _check_task(task: str | TaskSpec) -> TaskSpec:
    if isinstance(task, str) and task not in DECODABLE_TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks are {list(DECODABLE_TASKS)}")
    spec = task_spec(task)
    if spec.kind is TaskKind.AUXILIARY:
        raise ValueError(f"task {spec.name!r} has no challenge decoding; valid tasks are {list(DECODABLE_TASKS)}")
    return spec


def _bin_centres(num_bins: int, like: torch.Tensor) -> torch.Tensor:
    """linspace(-1, 1, num_bins) in the dtype and device of `like` (float64 first, see above)."""
    centres = _VA_CENTRES_F64 if num_bins == NUM_VA_BINS else np.linspace(-1.0, 1.0, num_bins)
    return torch.as_tensor(centres, device=like.device).to(like.dtype)


def au_probs(logits: torch.Tensor) -> torch.Tensor:
    """Per-AU occurrence probabilities: sigmoid of (..., 12) logits."""
    _check_last_dim("au_probs", logits, len(AU_NAMES))
    return torch.sigmoid(logits)


def expr_probs(logits: torch.Tensor) -> torch.Tensor:
    """Expression distribution: softmax of (..., 7) logits, or (..., 8) with `Other` (3rd ABAW on)."""
    _check_last_dim("expr_probs", logits, EXPR_CLASS_COUNTS)
    return torch.softmax(logits, dim=-1)


def va_probs(logits: torch.Tensor) -> torch.Tensor:
    """(..., 40) VA logits -> (..., 2, 20): one 20-bin softmax for valence, one for arousal.

    >>> va_probs(torch.zeros(3, 40)).shape
    torch.Size([3, 2, 20])
    """
    _check_last_dim("va_probs", logits, 2 * NUM_VA_BINS)
    return torch.softmax(logits.unflatten(-1, (2, NUM_VA_BINS)), dim=-1)  # (..., 2, 20)


def va_expectation(probs: torch.Tensor) -> torch.Tensor:
    """(..., 2, 20) bin probabilities -> (..., 2) valence/arousal: sum(p * linspace(-1, 1, 20)).

    >>> va_expectation(va_probs(torch.zeros(1, 40)))
    tensor([[0., 0.]])
    """
    if probs.dim() < 2 or tuple(probs.shape[-2:]) != (2, NUM_VA_BINS):
        raise ValueError(f"va_expectation: expected shape (..., 2, {NUM_VA_BINS}), got {tuple(probs.shape)}")
    return (probs * _bin_centres(NUM_VA_BINS, probs)).sum(dim=-1)


def _binned_probs(spec: TaskSpec, logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.unflatten(-1, spec.prob_shape), dim=-1)  # (..., D, bins)


def _binned_expectation(spec: TaskSpec, probs: torch.Tensor) -> torch.Tensor:
    if probs.dim() < 2 or tuple(probs.shape[-2:]) != spec.prob_shape:
        raise ValueError(f"decode {spec.name}: expected shape (..., {', '.join(map(str, spec.prob_shape))}), "
                         f"got {tuple(probs.shape)}")
    return (probs * _bin_centres(spec.num_bins, probs)).sum(dim=-1)


# Per kind: logits -> probabilities, and probabilities -> the challenge's predictions.
_PROBS = {TaskKind.MULTILABEL: lambda spec, z: torch.sigmoid(z),
          TaskKind.MULTICLASS: lambda spec, z: torch.softmax(z, dim=-1),
          TaskKind.BINNED_REGRESSION: _binned_probs}
_DECODERS = {TaskKind.MULTILABEL: lambda spec, p: (p > AU_THRESHOLD).long(),
             TaskKind.MULTICLASS: lambda spec, p: p.argmax(dim=-1),
             TaskKind.BINNED_REGRESSION: _binned_expectation}


def task_probs(task: str | TaskSpec, logits: torch.Tensor) -> torch.Tensor:
    """Probabilities of one task's head ("AU", "EXPR", "VA", or any decodable TaskSpec)."""
    spec = _check_task(task)
    _check_last_dim(f"{spec.name} probabilities", logits, spec.logit_widths)
    return _PROBS[spec.kind](spec, logits)


def decode(task: str | TaskSpec, probs: torch.Tensor) -> torch.Tensor:
    """Challenge predictions from probabilities: AU 0/1 (..., 12), EXPR class (...), VA values (..., 2).

    >>> decode("AU", torch.tensor([[0.2, 0.7] * 6]))
    tensor([[0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]])
    """
    spec = _check_task(task)
    if spec.kind is not TaskKind.BINNED_REGRESSION:
        _check_last_dim(f"decode {spec.name}", probs, spec.logit_widths)
    return _DECODERS[spec.kind](spec, probs)


def va_digitize(labels: torch.Tensor, num_bins: int = NUM_VA_BINS) -> torch.Tensor:
    """VA labels in [-1, 1] -> bin class 0..19 over the 21 edges linspace(-1, 1, 21).

    The `cce` target of the original: np.digitize(label, edges) - 1, with a label of exactly
    1.0 put in the last class. Unannotated rows (-5) must be masked out first; any value
    outside [-1, 1] raises.

    >>> va_digitize(torch.tensor([-1.0, 0.0, 1.0]))
    tensor([ 0, 10, 19])
    """
    if not torch.is_floating_point(labels):
        labels = labels.double()
    bad = ~((labels >= -1.0) & (labels <= 1.0))  # also catches NaN
    if bool(bad.any()):
        raise ValueError(f"va_digitize: expected labels in [-1, 1] (mask -5 rows first), "
                         f"got {labels[bad].flatten()[:5].tolist()}")
    edges = _VA_EDGES_F64 if num_bins == NUM_VA_BINS else np.linspace(-1.0, 1.0, num_bins + 1)
    edges = torch.as_tensor(edges, device=labels.device).to(labels.dtype)
    # right=True: edges[i-1] <= x < edges[i], i.e. np.digitize's default.
    classes = torch.bucketize(labels, edges, right=True) - 1
    return classes.clamp(max=num_bins - 1)
