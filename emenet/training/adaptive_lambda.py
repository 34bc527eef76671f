"""The original's adaptive task weights, exactly as its training scripts updated them.

After every epoch, per task: if the validation score beats the best so far (which starts at
0; lower-is-better metrics start at 1000, as the original's FA did) the count of epochs without
improvement goes back to 0, else it grows by one; a task whose count n exceeds 1 gets
lambda = log2(n). Nothing else changes a lambda: an improvement resets the count but not the
lambda. The original did this for teachers and students alike. EMENet's earlier variant
(a lambda back to its base on improvement, best so far starting at -inf) is
`AdaptiveTaskWeightHook` in emenet.training.hooks (`--adaptive_lambda reset`).
"""
from __future__ import annotations

import math

from emenet.training.trainer import Hook, Trainer

ADAPTIVE_LAMBDA_RULES = ("original", "reset", "off")
FIRST_BEST = 0.0  # the original's "best so far" before the first epoch (higher-is-better scores)
FIRST_BEST_LOWER = 1000.0  # ... and for lower-is-better ones (its FA loss)


def original_lambda_update(lambda_now: float, epochs_without_improvement: int) -> float:
    """The original's `update_lambda`: log2(n) once n > 1, else the lambda unchanged.

    >>> original_lambda_update(1.0, 1), original_lambda_update(1.0, 2), original_lambda_update(1.585, 0)
    (1.0, 1.0, 1.585)
    """
    return math.log2(epochs_without_improvement) if epochs_without_improvement > 1 else lambda_now


class OriginalAdaptiveTaskWeightHook(Hook):
    """`score_keys`: task -> validation metric key; `lower_is_better`: tasks whose metric is a loss."""

    def __init__(self, score_keys: dict[str, str], lower_is_better: tuple[str, ...] = ()):
        self.score_keys = score_keys
        self.lower_is_better = lower_is_better

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        s, weights = trainer.state, trainer.task_weights
        for task, key in self.score_keys.items():
            if key not in metrics:
                continue
            lower = task in self.lower_is_better
            best = s.best_task_scores.get(task, FIRST_BEST_LOWER if lower else FIRST_BEST)
            improved = metrics[key] < best if lower else metrics[key] > best
            if improved:
                s.best_task_scores[task] = metrics[key]
                s.epochs_without_improvement[task] = 0
            else:
                s.epochs_without_improvement[task] = s.epochs_without_improvement.get(task, 0) + 1
            weights.current[task] = original_lambda_update(weights.current[task], s.epochs_without_improvement[task])
