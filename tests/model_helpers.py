"""Model set-ups shared by tests (a plain module: `from model_helpers import ...`)."""
from __future__ import annotations

import torch


def perturb_batch_norms(module: torch.nn.Module, prelu_slopes: tuple[float, float] | None = None) -> None:
    """Batch-norm statistics and affine parameters far from the identity, as in a trained model,
    so that a folding or layout bug cannot hide behind a do-nothing normalisation; with
    `prelu_slopes`, PReLU slopes drawn from that range too (in the same pass over the modules,
    so a seed gives the same model as it always did)."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
            if prelu_slopes is not None and isinstance(m, torch.nn.PReLU):
                m.weight.uniform_(*prelu_slopes)
