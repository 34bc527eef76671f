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


def teacher_batch(clips: int = 2, steps: int = 3, seed: int = 0) -> dict:
    """One random batch per emotion task, as the teacher step takes it: uint8 clips, labels, masks."""
    g = torch.Generator().manual_seed(seed)
    labels = {"EXPR": torch.randint(0, 7, (clips, steps, 1), generator=g).float(),
              "AU": torch.randint(0, 2, (clips, steps, 12), generator=g).float(),
              "VA": torch.rand(clips, steps, 2, generator=g) * 2 - 1}
    return {t: {"frames": torch.randint(0, 256, (clips, steps, 3, 112, 112), dtype=torch.uint8, generator=g),
                "labels": y, "mask": torch.ones(y.shape, dtype=torch.bool)} for t, y in labels.items()}


def teacher_trainer(model, augment, batch_size: int, **options):
    """A `Trainer` with the teacher objective, SGD (lr 0.1), unit task weights and no validation;
    `options` are the Trainer's keyword settings under test (speed, teacher_step, ...)."""
    from emenet.training.objectives import TaskWeights, TeacherObjective
    from emenet.training.trainer import Trainer
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    return Trainer(model, TeacherObjective(), optimizer, torch.optim.lr_scheduler.StepLR(optimizer, 10), False, None,
                   lambda m: {}, TaskWeights({t: 1.0 for t in model.tasks}), augment, batch_size=batch_size,
                   nepochs=1, seed=0, device=torch.device("cpu"), progress=False, **options)
