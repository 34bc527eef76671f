"""Activation checkpointing for a chain of stages, with batch-norm running statistics updated once.

`torch.utils.checkpoint` recomputes a stage's forward during backward; a batch norm in training
mode would then fold the same batch into its running statistics a second time. During the
recomputation we set every batch norm's momentum to 0 (running mean and variance unchanged)
and put its `num_batches_tracked` back, so a checkpointed step leaves the same model state as a
plain one, up to rounding.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


@contextlib.contextmanager
def _frozen_running_stats(module: nn.Module) -> Iterator[None]:
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


def run_checkpointed(stages: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
    """`x` through `stages` in order, keeping only each stage's input for the backward pass."""
    for stage in stages:
        x = checkpoint(stage, x, use_reentrant=False,
                       context_fn=lambda s=stage: (contextlib.nullcontext(), _frozen_running_stats(s)))
    return x
