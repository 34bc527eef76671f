"""Training objectives: logits + batch -> a loss dict {'loss', 'loss_AU', 'loss_EXPR', ...}."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from emenet import losses as L


@dataclass
class TaskWeights:
    """Per-task lambdas, normalised to sum to 1 over the tasks being trained."""

    base: dict[str, float]
    current: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.current:
            self.current = dict(self.base)

    def normalised(self) -> dict[str, float]:
        total = sum(self.current.values())
        return {t: w / total for t, w in self.current.items()}


@dataclass
class TeacherObjective:
    """Supervised multitask losses with the original's choices; unannotated labels are masked."""

    au_loss: str = "bce"
    expr_loss: str = "ce"
    va_loss: str = "cce+ccc"
    fa_loss: str = "l1_loss"
    au_pos_weight: torch.Tensor | None = None
    expr_weight: torch.Tensor | None = None
    landmark_teacher: nn.Module | None = None

    def __post_init__(self) -> None:
        L.check_loss_name("AU", self.au_loss)
        L.check_loss_name("EXPR", self.expr_loss)
        L.check_loss_name("VA", self.va_loss)
        L.check_loss_name("FA", self.fa_loss)

    def task_loss(self, task: str, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Loss of one task on (N, C) logits with (N, C_label) labels and mask."""
        if task == "AU":
            pos_weight = None if self.au_pos_weight is None else self.au_pos_weight.to(logits.device)
            return L.au_loss(logits, labels, mask=mask, pos_weight=pos_weight)
        if task == "EXPR":
            target = torch.where(mask[:, 0], labels[:, 0], torch.full_like(labels[:, 0], -1)).long()
            weight = None if self.expr_weight is None else self.expr_weight.to(logits.device)
            return L.expr_loss(logits, target, weight=weight)
        if task == "VA":
            return L.va_loss(logits, labels, kind=self.va_loss, mask=mask.all(dim=1))
        raise ValueError(f"no supervised loss for task {task!r}")

    def __call__(self, logits: dict[str, torch.Tensor], batch: dict[str, dict[str, torch.Tensor]],
                 clip_slices: dict[str, slice], frames: torch.Tensor, weights: dict[str, float]) -> dict[str, torch.Tensor]:
        """`logits` cover every clip of the step; `clip_slices[task]` selects that task's clips."""
        out: dict[str, torch.Tensor] = {}
        for task, sl in clip_slices.items():
            labels, mask = batch[task]["labels"], batch[task]["mask"]
            out[f"loss_{task}"] = self.task_loss(task, logits[task][sl].flatten(0, 1),
                                                 labels.flatten(0, 1), mask.flatten(0, 1))
        if "FA" in logits and self.landmark_teacher is not None:
            with torch.no_grad():
                target = self.landmark_teacher(frames.flatten(0, 1))  # (B*T, 136)
            out["loss_FA"] = L.fa_loss(logits["FA"].flatten(0, 1), target)
        out["loss"] = sum(weights[k.removeprefix("loss_")] * v for k, v in out.items())
        return out
