"""Training objectives: logits + batch -> a loss dict {'loss', 'loss_AU', 'loss_EXPR', ...}."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from emenet import losses as L
from emenet.tasks import DISTILL_KEY, TASKS, TaskKind, TaskSpec

if TYPE_CHECKING:
    from emenet.data.soft_labels import SoftLabelLayout


@dataclass
class TaskWeights:
    """Per-task lambdas of the heads being trained, normalised by their sum plus `inactive`.

    `inactive` holds the lambdas of the model's other heads: the original normalised over all
    of its lambdas (AU, EXPR, VA, FA; and VAD in the visual-audio tree) whether or not a task
    was trained (`--lambda_normalisation all`); empty, the trained heads' weights sum to 1.
    """

    base: dict[str, float]
    current: dict[str, float] = field(default_factory=dict)
    inactive: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.current:
            self.current = dict(self.base)

    def normalised(self) -> dict[str, float]:
        total = sum(self.current.values()) + sum(self.inactive.values())
        return {t: w / total for t, w in self.current.items()}


@dataclass
class TeacherObjective:
    """Supervised multitask losses with the original's choices; unannotated labels are masked."""

    au_loss: str = "bce"
    expr_loss: str = "ce"
    va_loss: str = "ccc"
    fa_loss: str = "l1_loss"
    au_pos_weight: torch.Tensor | None = None
    expr_weight: torch.Tensor | None = None
    landmark_teacher: nn.Module | None = None
    ccc_form: str = "sample"  # CCC inside the VA loss: sample (ddof 1, the original's) or population
    vad_grad: bool = True  # False: the VAD loss adds to the total without a gradient (the original teachers')

    def __post_init__(self) -> None:
        L.check_loss_name("AU", self.au_loss)
        L.check_loss_name("EXPR", self.expr_loss)
        L.check_loss_name("VA", self.va_loss)
        L.check_loss_name("FA", self.fa_loss)

    def task_loss(self, task: str, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Loss of one task on (N, C) logits with (N, C_label) labels and mask (the loss of its kind)."""
        spec = TASKS.get(task)
        if spec is None or spec.kind not in _SUPERVISED_LOSSES:
            raise ValueError(f"no supervised loss for task {task!r}")
        return _SUPERVISED_LOSSES[spec.kind](self, spec, logits, labels, mask)

    def __call__(self, logits: dict[str, torch.Tensor], batch: dict[str, dict[str, torch.Tensor]],
                 clip_slices: dict[str, slice], frames: torch.Tensor, weights: dict[str, float]) -> dict[str, torch.Tensor]:
        """`logits` cover every clip of the step; `clip_slices[task]` selects that task's clips."""
        out: dict[str, torch.Tensor] = {}
        for task, sl in clip_slices.items():
            labels, mask = batch[task]["labels"], batch[task]["mask"]
            out[f"loss_{task}"] = self.task_loss(task, logits[task][sl].flatten(0, 1),
                                                 labels.flatten(0, 1), mask.flatten(0, 1))
        return _with_auxiliary_and_total(out, self.landmark_teacher, logits, batch, clip_slices, frames, weights,
                                         self.vad_grad)


def _multilabel_loss(objective: TeacherObjective, spec: TaskSpec, logits: torch.Tensor, labels: torch.Tensor,
                     mask: torch.Tensor) -> torch.Tensor:
    pos_weight = None if objective.au_pos_weight is None else objective.au_pos_weight.to(logits.device)
    return L.au_loss(logits, labels, mask=mask, pos_weight=pos_weight)


def _multiclass_loss(objective: TeacherObjective, spec: TaskSpec, logits: torch.Tensor, labels: torch.Tensor,
                     mask: torch.Tensor) -> torch.Tensor:
    target = torch.where(mask[:, 0], labels[:, 0], torch.full_like(labels[:, 0], spec.missing_value)).long()
    weight = None if objective.expr_weight is None else objective.expr_weight.to(logits.device)
    return L.expr_loss(logits, target, weight=weight)


def _regression_loss(objective: TeacherObjective, spec: TaskSpec, logits: torch.Tensor, labels: torch.Tensor,
                     mask: torch.Tensor) -> torch.Tensor:
    return L.va_loss(logits, labels, kind=objective.va_loss, mask=mask.all(dim=1), ccc_form=objective.ccc_form)


# Per kind: the supervised loss, with the objective's options for it (pos weight, class weights, VA loss).
_SUPERVISED_LOSSES = {TaskKind.MULTILABEL: _multilabel_loss, TaskKind.MULTICLASS: _multiclass_loss,
                      TaskKind.BINNED_REGRESSION: _regression_loss}


def _with_auxiliary_and_total(out: dict[str, torch.Tensor], landmark_teacher: nn.Module | None,
                              logits: dict[str, torch.Tensor], batch: dict[str, dict[str, torch.Tensor]],
                              clip_slices: dict[str, slice], frames: torch.Tensor,
                              weights: dict[str, float], vad_grad: bool = True) -> dict[str, torch.Tensor]:
    """Add the auxiliary heads' losses (FA, VAD) where the model has them, and the weighted total.

    `vad_grad=False` reproduces the original teachers, which computed the VAD loss under
    `torch.no_grad`: it is reported and added to the total, but trains nothing."""
    fa = _landmark_loss(landmark_teacher, logits, frames)
    if fa is not None:
        out["loss_FA"] = fa
    vad = _voice_activity_loss(logits, batch, clip_slices)
    if vad is not None:
        out["loss_VAD"] = vad if vad_grad else vad.detach()
    out["loss"] = sum(weights[k.removeprefix("loss_")] * v for k, v in out.items())
    return out


def _voice_activity_loss(logits: dict[str, torch.Tensor], batch: dict[str, dict[str, torch.Tensor]],
                         clip_slices: dict[str, slice]) -> torch.Tensor | None:
    """Binary KL between the VAD head and the fixed VAD teacher's per-frame targets ("vad" in the batch)."""
    if "VAD" not in logits:
        return None
    missing = [t for t in clip_slices if "vad" not in batch[t]]
    if missing:
        raise ValueError(f"the model has a VAD head but the batch of {missing} has no 'vad' targets")
    order = sorted(clip_slices, key=lambda t: clip_slices[t].start)  # clips in the order of the logits
    target = torch.cat([batch[t]["vad"] for t in order]).flatten()  # (sum B * T,)
    student = torch.cat([logits["VAD"][clip_slices[t]] for t in order]).flatten(0, 1)  # (sum B * T, 2)
    return L.vad_distill_loss(student, target)


def _landmark_loss(teacher: nn.Module | None, logits: dict[str, torch.Tensor], frames: torch.Tensor) -> torch.Tensor | None:
    """L1 between the FA head and a fixed landmark network on the same (augmented) frames."""
    if "FA" not in logits or teacher is None:
        return None
    with torch.no_grad():
        target = teacher(frames.flatten(0, 1))  # (B*T, 136)
    return L.fa_loss(logits["FA"].flatten(0, 1), target)


def certainty_weights(task: str, probs: torch.Tensor) -> torch.Tensor:
    """Per-frame weight 1 - normalised entropy of the ensemble's mean distribution (N,), the
    entropy averaged over a task's units or dimensions."""
    from emenet.uncertainty import task_uncertainty
    entropy = task_uncertainty({task: probs})[task]  # (N,) or (N, units)
    return 1.0 - (entropy.mean(dim=1) if entropy.dim() > 1 else entropy)


@dataclass
class StudentObjective:
    """Distillation to the ensemble's mean distributions (the original's student losses).

    `mix_ground_truth` in [0, 1] blends in the supervised loss on frames that have ground truth;
    `frame_weights="certainty"` weights each frame by the ensemble's certainty on it.
    """

    layout: "SoftLabelLayout"
    T: float = 1.0
    mix_ground_truth: float = 0.0
    frame_weights: str = "uniform"
    supervised: TeacherObjective | None = None
    landmark_teacher: nn.Module | None = None
    ccc_form: str = "sample"  # CCC inside the VA distillation loss (see losses.va_distill_loss)

    def __post_init__(self) -> None:
        if not 0.0 <= self.mix_ground_truth <= 1.0:
            raise ValueError(f"mix_ground_truth must be in [0, 1], got {self.mix_ground_truth}")
        if self.frame_weights not in ("uniform", "certainty"):
            raise ValueError(f"frame_weights must be uniform or certainty, got {self.frame_weights!r}")

    def __call__(self, logits: dict[str, torch.Tensor], batch: dict[str, dict[str, torch.Tensor]],
                 clip_slices: dict[str, slice], frames: torch.Tensor, weights: dict[str, float]) -> dict[str, torch.Tensor]:
        sl = clip_slices[DISTILL_KEY]
        labels = batch[DISTILL_KEY]["labels"].flatten(0, 1)  # (N, width)
        mask = batch[DISTILL_KEY]["mask"].flatten(0, 1)
        real = mask[:, 0]  # padding frames have no soft label
        out: dict[str, torch.Tensor] = {}
        for task in self.layout.tasks:
            student = logits[task][sl].flatten(0, 1)[real]
            soft = labels[real][:, self.layout.soft[task]]
            spec = TASKS[task]
            if spec.num_bins:  # (N, 2 * 20) -> (N, 2, 20)
                soft = soft.unflatten(1, spec.prob_shape)
            w = certainty_weights(task, soft) if self.frame_weights == "certainty" else None
            extra = {"ccc_form": self.ccc_form} if spec.kind is TaskKind.BINNED_REGRESSION else {}
            loss = L.DISTILL_LOSSES[task](student, soft, T=self.T, weight=w, **extra)
            if self.mix_ground_truth > 0 and self.supervised is not None:
                g = self.layout.ground_truth[task]
                gt_loss = self.supervised.task_loss(task, student, labels[real][:, g], mask[real][:, g])
                loss = (1.0 - self.mix_ground_truth) * loss + self.mix_ground_truth * gt_loss
            out[f"loss_{task}"] = loss
        return _with_auxiliary_and_total(out, self.landmark_teacher, logits, batch, clip_slices, frames, weights)
