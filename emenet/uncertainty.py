"""Uncertainty as normalized entropy, for one model and for an ensemble.

Normalized entropy H(p) / log(K) lies in [0, 1] whatever the number of outcomes K, so the
AU (K=2), EXPR (K=7) and valence/arousal (K=20 each) uncertainties can be compared. For an
ensemble the total uncertainty splits into the members' mean (aleatoric) and the rest
(epistemic, the normalized mutual information); see section 3 of the reference README.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import torch

from emenet.tasks import TASKS, TaskKind, TaskSpec, task_spec

# Tasks whose probabilities have an entropy: AU Bernoulli per unit, EXPR categorical,
# VA one 20-bin categorical per dimension (valence, arousal).
UNCERTAINTY_TASKS: tuple[str, ...] = tuple(t for t in ("AU", "EXPR", "VA") if TASKS[t].kind is not TaskKind.AUXILIARY)


def normalized_entropy(probs: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Entropy of the categorical distributions along `dim`, divided by log(K).

    0 * log 0 counts as 0, so one-hot inputs give exactly 0; uniform ones give 1.

    >>> normalized_entropy(torch.tensor([[0.25] * 4, [1.0, 0.0, 0.0, 0.0]]))
    tensor([1., 0.])
    """
    num_outcomes = probs.shape[dim]
    if num_outcomes < 2:
        raise ValueError(f"normalized_entropy: expected at least 2 outcomes along dim {dim}, "
                         f"got shape {tuple(probs.shape)}")
    entropy = 0.0 - torch.special.xlogy(probs, probs).sum(dim=dim)  # 0.0 - x: +0 (not -0) when certain
    return entropy / math.log(num_outcomes)


def bernoulli_normalized_entropy(p: torch.Tensor) -> torch.Tensor:
    """Normalized entropy (in bits, i.e. divided by log 2) of Bernoulli(p), elementwise.

    >>> bernoulli_normalized_entropy(torch.tensor([0.5, 0.0, 1.0]))
    tensor([1., 0., 0.])
    """
    return normalized_entropy(torch.stack([p, 1.0 - p], dim=-1), dim=-1)


def _entropy_fn(spec: TaskSpec):
    return bernoulli_normalized_entropy if spec.kind is TaskKind.MULTILABEL else normalized_entropy


def _check_probs(task: str | TaskSpec, probs: torch.Tensor, leading: int) -> TaskSpec:
    if isinstance(task, str) and task not in UNCERTAINTY_TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks are {list(UNCERTAINTY_TASKS)}")
    spec = task_spec(task)
    shapes = spec.prob_shapes
    shape = next((s for s in shapes if probs.dim() >= 1 and probs.shape[-1] == s[-1]), shapes[0])
    if probs.dim() < leading + len(shape) or tuple(probs.shape[probs.dim() - len(shape):]) != shape:
        lead = "M, " if leading else ""
        raise ValueError(f"{spec.name} probabilities: expected shape ({lead}..., {', '.join(map(str, shape))}), "
                         f"got {tuple(probs.shape)}")
    return spec


def ensemble_uncertainty(member_probs: torch.Tensor, binary: bool = False) -> dict[str, torch.Tensor]:
    """Total, aleatoric and epistemic normalized entropy of an ensemble (members on axis 0).

    `member_probs` is (M, ..., K) categorical probabilities, or (M, ...) Bernoulli
    probabilities when `binary`. total = H(mean over members), aleatoric = mean of the
    members' H, epistemic = total - aleatoric (>= 0 by Jensen, up to rounding).

    >>> u = ensemble_uncertainty(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    >>> u["total"], u["aleatoric"], u["epistemic"]
    (tensor(1.), tensor(0.), tensor(1.))
    """
    if member_probs.dim() < (1 if binary else 2):
        raise ValueError(f"ensemble_uncertainty: expected (M, ...{'' if binary else ', K'}) probabilities, "
                         f"got shape {tuple(member_probs.shape)}")
    entropy = bernoulli_normalized_entropy if binary else normalized_entropy
    total = entropy(member_probs.mean(dim=0))
    aleatoric = entropy(member_probs).mean(dim=0)
    return {"total": total, "aleatoric": aleatoric, "epistemic": total - aleatoric}


def task_uncertainty(probs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One model's normalized entropy per task: AU (..., 12), EXPR (...), VA (..., 2).

    `probs` maps task -> probabilities as from decoding.task_probs: AU (..., 12),
    EXPR (..., 7), VA (..., 2, 20); tasks not present are skipped.
    """
    out = {}
    for task, p in probs.items():
        out[task] = _entropy_fn(_check_probs(task, p, leading=0))(p)
    return out


def ensemble_task_uncertainty(member_probs: Mapping[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Per task {"total", "aleatoric", "epistemic"} for an ensemble's stacked probabilities.

    `member_probs` maps task -> (M, ...) stacks: AU (M, ..., 12), EXPR (M, ..., 7),
    VA (M, ..., 2, 20). Results are AU (..., 12), EXPR (...), VA (..., 2) (valence, arousal).

    >>> m = {"EXPR": torch.full((3, 5, 7), 1 / 7)}
    >>> ensemble_task_uncertainty(m)["EXPR"]["total"].shape
    torch.Size([5])
    """
    out = {}
    for task, p in member_probs.items():
        spec = _check_probs(task, p, leading=1)
        out[task] = ensemble_uncertainty(p, binary=spec.kind is TaskKind.MULTILABEL)
    return out
