"""Trainer hooks: checkpoints, TensorBoard, metric files, the original's adaptive task weights."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from emenet.io_utils import save_torch, write_json
from emenet.models.checkpoint import save_checkpoint
from emenet.run_layout import history_file, net_file, optimizer_file
from emenet.training.trainer import Hook, Trainer

log = logging.getLogger(__name__)


class CheckpointHook(Hook):
    """Every epoch: `opt_epoch_<E>_OPT.pth` (optimizer, scheduler, RNG, trainer state), then the net."""

    def __init__(self, run_dir: Path, name: str, extra: dict | None = None):
        self.run_dir, self.name, self.extra = run_dir, name, extra or {}

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        epoch = trainer.state.epoch
        save_torch(optimizer_file(self.run_dir, epoch), trainer.state_dict())
        save_checkpoint(net_file(self.run_dir, self.name, epoch), trainer.model, epoch,
                        extra={"metrics": metrics, **self.extra}, overwrite=True)


class MetricsFileHook(Hook):
    """`val_epoch_<E>.json` per epoch and `history.json` (all epochs, best epoch)."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        s = trainer.state
        write_json(self.run_dir / f"val_epoch_{s.epoch}.json", {"epoch": s.epoch, **metrics})
        write_json(history_file(self.run_dir), {"best_epoch": s.best_epoch, "best_score": s.best_score,
                                                   "epochs": s.history})
        log.info("epoch %d: %s", s.epoch, json.dumps({k: round(v, 4) for k, v in metrics.items()
                                                      if k.endswith("score") or "_ccc_" in k}))


class TensorBoardHook(Hook):
    def __init__(self, log_dir: Path, every: int = 10):
        from torch.utils.tensorboard import SummaryWriter
        self.writer = SummaryWriter(str(log_dir))
        self.every = every

    def on_step_end(self, trainer: Trainer, losses: dict[str, float]) -> None:
        if trainer.state.step % self.every == 0:
            for k, v in losses.items():
                self.writer.add_scalar(f"train/{k}", v, trainer.state.step)
            self.writer.add_scalar("train/lr", trainer.optimizer.param_groups[0]["lr"], trainer.state.step)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            if isinstance(v, (int, float)) and math.isfinite(v):
                self.writer.add_scalar(f"val/{k}", v, trainer.state.epoch)
        for t, w in trainer.task_weights.normalised().items():
            self.writer.add_scalar(f"lambda/{t}", w, trainer.state.epoch)
        self.writer.flush()

    def on_run_end(self, trainer: Trainer) -> None:
        self.writer.close()


class AdaptiveTaskWeightHook(Hook):
    """The original's rule: a task whose validation score has not improved for n epochs gets
    lambda = log2(n) once that exceeds 1 (n > 2), else its base weight; weights are then normalised."""

    def __init__(self, score_keys: dict[str, str]):
        self.score_keys = score_keys  # task -> metric key, e.g. "AU" -> "AU_score"

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        s, weights = trainer.state, trainer.task_weights
        for task, key in self.score_keys.items():
            if key not in metrics:
                continue
            if metrics[key] > s.best_task_scores.get(task, -math.inf):
                s.best_task_scores[task] = metrics[key]
                s.epochs_without_improvement[task] = 0
            else:
                s.epochs_without_improvement[task] = s.epochs_without_improvement.get(task, 0) + 1
            n = s.epochs_without_improvement[task]
            weights.current[task] = math.log2(n) if n > 0 and math.log2(n) > 1 else weights.base[task]
