"""Logits -> probabilities -> challenge predictions, exactly as the original decoded them.

Every function works on any leading shape (..., C), so frames (N, C) and clips (B, T, C)
go through the same code. The conventions (sigmoid > 0.5, argmax, the expectation over
`linspace(-1, 1, 20)`) are the original's; see section 3 of the reference README.
"""
from __future__ import annotations

import numpy as np
import torch

from emenet.tasks import AU_NAMES, EXPR_CLASS_COUNTS, NUM_VA_BINS

DECODABLE_TASKS: tuple[str, ...] = ("AU", "EXPR", "VA")

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


def _check_task(task: str) -> None:
    if task not in DECODABLE_TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks are {list(DECODABLE_TASKS)}")


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
    centres = torch.as_tensor(_VA_CENTRES_F64, device=probs.device).to(probs.dtype)
    return (probs * centres).sum(dim=-1)


def task_probs(task: str, logits: torch.Tensor) -> torch.Tensor:
    """Probabilities of one task's head ("AU", "EXPR" or "VA")."""
    _check_task(task)
    return {"AU": au_probs, "EXPR": expr_probs, "VA": va_probs}[task](logits)


def decode(task: str, probs: torch.Tensor) -> torch.Tensor:
    """Challenge predictions from probabilities: AU 0/1 (..., 12), EXPR class (...), VA values (..., 2).

    >>> decode("AU", torch.tensor([[0.2, 0.7] * 6]))
    tensor([[0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]])
    """
    _check_task(task)
    if task == "AU":
        _check_last_dim("decode AU", probs, len(AU_NAMES))
        return (probs > AU_THRESHOLD).long()
    if task == "EXPR":
        _check_last_dim("decode EXPR", probs, EXPR_CLASS_COUNTS)
        return probs.argmax(dim=-1)
    return va_expectation(probs)


def va_digitize(labels: torch.Tensor) -> torch.Tensor:
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
    edges = torch.as_tensor(_VA_EDGES_F64, device=labels.device).to(labels.dtype)
    # right=True: edges[i-1] <= x < edges[i], i.e. np.digitize's default.
    classes = torch.bucketize(labels, edges, right=True) - 1
    return classes.clamp(max=NUM_VA_BINS - 1)
