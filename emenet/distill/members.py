"""Ensemble members: which checkpoints, checked to agree on their tasks."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from emenet.errors import EMENetInputError
from emenet.io_utils import file_sha256
from emenet.models.checkpoint import load_checkpoint
from emenet.models.emenet import EMENet
from emenet.run_layout import checkpoint_path, pair_names_and_epochs
from emenet.tasks import EMOTION_TASKS


@dataclass(frozen=True)
class Member:
    name: str
    epoch: int
    checkpoint: Path

    def sha256(self) -> str:
        return file_sha256(self.checkpoint)

    def to_dict(self) -> dict:
        return {"name": self.name, "epoch": self.epoch, "checkpoint": str(self.checkpoint), "sha256": self.sha256()}


def members_from_names(names: list[str], load_epochs: list[int], checkpoints_dir: str | os.PathLike) -> list[Member]:
    """`--names A B C --load_epochs 4 8 4` under `--checkpoints_dir`, as the original."""
    members = [Member(n, e, checkpoint_path(checkpoints_dir, n, e)) for n, e in pair_names_and_epochs(names, load_epochs)]
    for m in members:
        if not m.checkpoint.is_file():
            raise EMENetInputError(f"{m.checkpoint}: checkpoint of member {m.name} epoch {m.epoch} not found")
    return members


def load_members(members: list[Member], device: str = "cpu") -> list[EMENet]:
    """Load every member; all must predict the same emotion tasks."""
    models = [load_checkpoint(m.checkpoint, device) for m in members]
    tasks = [tuple(t for t in model.tasks if t in EMOTION_TASKS) for model in models]
    for m, t in zip(members, tasks):
        if t != tasks[0]:
            raise EMENetInputError(f"members disagree on tasks: {members[0].name} predicts {list(tasks[0])}, "
                                   f"{m.name} predicts {list(t)}")
    return models
