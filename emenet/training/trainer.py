"""A small trainer: an explicit epoch loop, hooks for logging/checkpointing, exact resume.

Nothing happens in `__init__`; `run()` does the work. All randomness of an epoch (batch order,
augmentation) is drawn from generators seeded by (seed, epoch), and the global RNG that drives
dropout is saved with each checkpoint, so a resumed run continues as if never stopped.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import KW_ONLY, asdict, dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from emenet.data.augment import AugmentConfig, augment_clips, to_float_frames
from emenet.data.datasets import MultiTaskBatchSampler, MultiTaskClipDataset, collate_by_task
from emenet.errors import EMENetInputError
from emenet.fast.training import TrainSpeed
from emenet.models.emenet import EMENet
from emenet.training.objectives import TaskWeights

log = logging.getLogger(__name__)

# per_task: the original's step, a forward pass per task's batch; concat: one pass over every task's clips
TEACHER_STEPS = ("per_task", "concat")
AUXILIARY_LOSSES = ("FA", "VAD")  # heads trained on every pass, whatever its task


@dataclass
class TrainState:
    """What a checkpoint must hold besides weights and optimizer to continue a run exactly."""

    epoch: int = 0
    step: int = 0
    best_score: float = -math.inf
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    task_weights: dict[str, float] = field(default_factory=dict)
    best_task_scores: dict[str, float] = field(default_factory=dict)
    epochs_without_improvement: dict[str, int] = field(default_factory=dict)


class Hook:
    """Called by the trainer; override what you need."""

    def on_step_end(self, trainer: "Trainer", losses: dict[str, float]) -> None: ...

    def on_epoch_end(self, trainer: "Trainer", metrics: dict[str, float]) -> None: ...

    def on_run_end(self, trainer: "Trainer") -> None: ...


@dataclass
class Trainer:
    """What to train on and how, then (keyword-only) the optional settings."""

    model: EMENet
    objective: Callable[..., dict[str, torch.Tensor]]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scheduler_per_step: bool
    train_set: MultiTaskClipDataset
    evaluate: Callable[[EMENet], dict[str, float]]
    task_weights: TaskWeights
    augment: AugmentConfig
    batch_size: int
    nepochs: int
    seed: int
    device: torch.device
    _: KW_ONLY
    steps_per_epoch: int | None = None
    num_workers: int = 0
    hooks: list[Hook] = field(default_factory=list)
    state: TrainState = field(default_factory=TrainState)
    progress: bool = True
    speed: TrainSpeed = field(default_factory=TrainSpeed)  # channels-last / bf16 / compile (emenet.fast.training)
    select_metric: str = "total_score"  # the validation score that picks the best epoch (emenet.evaluation.metrics.selection_metric)
    teacher_step: str = "per_task"  # one of TEACHER_STEPS
    epoch_length: str = "shortest"  # emenet.data.datasets.EPOCH_LENGTHS
    _forward: Callable[..., Any] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.teacher_step not in TEACHER_STEPS:
            raise ValueError(f"teacher_step must be one of {list(TEACHER_STEPS)}, got {self.teacher_step!r}")

    def run(self) -> TrainState:
        for epoch in range(self.state.epoch + 1, self.nepochs + 1):
            train_losses = self.train_epoch(epoch)
            metrics = {**self.evaluate(self.model), **{f"train_{k}": v for k, v in train_losses.items()}}
            self.state.epoch = epoch
            self._record(metrics)
            for hook in self.hooks:
                hook.on_epoch_end(self, metrics)
        for hook in self.hooks:
            hook.on_run_end(self)
        return self.state

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass of `steps_per_epoch` steps; returns the mean of each loss over the epoch."""
        self.model.train()
        sampler = MultiTaskBatchSampler(self.train_set.task_ranges, self.batch_size, self.seed, epoch, self.steps_per_epoch,
                                        self.epoch_length)
        loader = DataLoader(self.train_set, batch_sampler=sampler, collate_fn=collate_by_task,
                            num_workers=self.num_workers, pin_memory=self.device.type == "cuda",
                            persistent_workers=False)
        aug_gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch + 7)
        bar = tqdm(loader, desc=f"epoch {epoch}/{self.nepochs}", unit="step", disable=not self.progress, leave=False)
        sums: dict[str, float] = {}
        for batch in bar:
            losses = self.train_step(batch, aug_gen)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            self.state.step += 1
            if self.scheduler_per_step:
                self.scheduler.step()
            bar.set_postfix(loss=f"{losses['loss']:.3f}")
            for hook in self.hooks:
                hook.on_step_end(self, losses)
        if not self.scheduler_per_step:
            self.scheduler.step()
        return {k: v / len(sampler) for k, v in sums.items()}

    def train_step(self, batch: dict[str, dict[str, torch.Tensor]], aug_gen: torch.Generator) -> dict[str, float]:
        """One optimisation step over one batch per task (`teacher_step`: see TEACHER_STEPS)."""
        if self.teacher_step == "concat" or len(batch) == 1:
            self.optimizer.zero_grad(set_to_none=True)
            losses = self._forward_losses(batch, aug_gen, self.task_weights.normalised())
            losses["loss"].backward()
            self.optimizer.step()
            return {k: float(v.detach()) for k, v in losses.items()}
        return self._per_task_step(batch, aug_gen)

    def _per_task_step(self, batch: dict[str, dict[str, torch.Tensor]], aug_gen: torch.Generator) -> dict[str, float]:
        """The original's step: each task's clips as their own forward pass (batch-norm statistics
        per task batch), the auxiliary heads' losses of each pass weighted by 1 / number of tasks.
        Each pass is backpropagated at once and the gradients accumulate, so only one pass's
        activations are alive at a time; the sum is the gradient of the summed loss."""
        weights = self.task_weights.normalised()
        share = 1.0 / len(batch)
        pass_weights = {k: w * share if k in AUXILIARY_LOSSES else w for k, w in weights.items()}
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        for task in batch:
            losses = self._forward_losses({task: batch[task]}, aug_gen, pass_weights)
            losses["loss"].backward()
            for k, v in losses.items():
                scale = share if k.removeprefix("loss_") in AUXILIARY_LOSSES else 1.0  # report the mean over passes
                sums[k] = sums.get(k, 0.0) + scale * float(v.detach())
        self.optimizer.step()
        return sums

    def _forward_losses(self, batch: dict[str, dict[str, torch.Tensor]], aug_gen: torch.Generator,
                        weights: dict[str, float]) -> dict[str, torch.Tensor]:
        """One forward pass over the clips of every task in `batch` (concatenated) and their loss dict."""
        tasks = list(batch)
        frames = torch.cat([batch[t]["frames"] for t in tasks]).to(self.device, non_blocking=True)
        frames = augment_clips(to_float_frames(frames), self.augment, aug_gen)  # (sum B, T, 3, H, W)
        frames = self.speed.frames(frames)
        if self._forward is None:
            self._forward = self.speed.prepare(self.model)
        slices, start = {}, 0
        for t in tasks:
            n = batch[t]["frames"].shape[0]
            slices[t] = slice(start, start + n)
            start += n
        audio = None
        if "audio" in batch[tasks[0]]:  # EMENet-VA: one window per frame, (sum B, T, W)
            audio = torch.cat([batch[t]["audio"] for t in tasks]).to(self.device, non_blocking=True)
        batch = {t: {k: v.to(self.device, non_blocking=True) for k, v in b.items() if k not in ("frames", "audio")}
                 for t, b in batch.items()}
        with self.speed.autocast(self.device):
            logits, _ = self._forward(frames) if audio is None else self._forward(frames, audio)
        logits = {k: v.float() for k, v in logits.items()}
        return self.objective(logits, batch, slices, frames, weights)

    def _record(self, metrics: dict[str, float]) -> None:
        s = self.state
        s.history.append({"epoch": s.epoch, **metrics})
        scores = sorted(k for k in metrics if not k.startswith("train_"))
        if scores and self.select_metric not in metrics:
            raise EMENetInputError(f"--metric {self.select_metric!r} is not among the validation scores {scores}")
        score = metrics.get(self.select_metric, -math.inf)
        if score > s.best_score:
            s.best_score, s.best_epoch = score, s.epoch

    # --- checkpoint state -------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        self.state.task_weights = dict(self.task_weights.current)
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "trainer": asdict(self.state), "rng": rng}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(d["optimizer"])
        self.scheduler.load_state_dict(d["scheduler"])
        self.state = TrainState(**d["trainer"])
        if self.state.task_weights:
            self.task_weights.current = dict(self.state.task_weights)
        torch.set_rng_state(d["rng"]["torch"])
        if "cuda" in d["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(d["rng"]["cuda"])
