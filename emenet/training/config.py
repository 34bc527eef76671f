"""Training options: one dataclass, YAML defaults under command-line flags, saved with each run.

Option names follow the original `train_teacher.py` (`--TModel`, `--nhid`, `--lr_policy`, ...) so
its users' commands keep working; its defaults are the original's (see the reference README).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from emenet.errors import EMENetInputError
from emenet.models.emenet import EMENetConfig
from emenet.tasks import EMOTION_TASKS, validate_tasks


@dataclass
class TrainConfig:
    # run
    name: str = "teacher_exp_0"
    checkpoints_dir: str = "./checkpoints"
    loggings_dir: str = "./loggings"
    load_epoch: int = 0  # 0: new run; -1: resume from the latest checkpoint; E: resume after epoch E
    overwrite: bool = False
    seed: int = 0
    device: str = "cpu"
    cuda: bool = False  # the original's flag; same as --device cuda
    num_workers: int = 1
    # data
    data_root: str = ""
    dataset_names: list[str] = field(default_factory=lambda: ["Aff_wild2"])
    cache_dir: str | None = None
    tasks: list[str] = field(default_factory=lambda: list(EMOTION_TASKS))
    seq_len: int = 30
    fps: int = 30
    batch_size: int = 2  # clips per task per step
    image_size: int = 112
    val_seq_len: int = 64  # validation chunk length; the hidden state is carried along each video
    max_steps_per_epoch: int | None = None  # cap for quick runs; default: longest task's clips / batch_size
    max_val_videos: int | None = None
    # model
    TModel: str = "GRU"
    nhid: int = 128
    nlayers: int = 1
    dropout: float = 0.5
    auxiliary: bool = False  # face-alignment head taught by a fixed landmark network
    fa_teacher: str | None = None  # MobileFaceNet-136 checkpoint (mobilefacenet_model_best.pth.tar)
    pretrained_backbone: str | None = None  # same format; initialises the backbone as the original did
    # optimisation
    optimizer: str = "Adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_policy: str = "step"
    lr_decay_epochs: int = 10
    T_max: int = 10000
    nepochs: int = 36
    # losses
    au_loss: str = "bce"
    expr_loss: str = "ce"
    va_loss: str = "cce+ccc"
    fa_loss: str = "l1_loss"
    lambda_AU: float = 1.0
    lambda_EXPR: float = 1.0
    lambda_VA: float = 1.0
    lambda_FA: float = 1.0
    adaptive_lambda: bool = False  # the original's rule: lambda_t = log2(epochs without improvement) once above 1
    class_weights: str = "original"  # original | dataset (from the training set's label frequencies)
    # students (train_student.py)
    annotation: str | None = None  # an ensemble annotation directory (create_new_annotations.py)
    T: float = 1.0  # distillation temperature
    mix_ground_truth: float = 0.0  # weight of the supervised loss on frames with ground truth, in [0, 1]
    distill_weights: str = "uniform"  # uniform | certainty (1 - the ensemble's normalised entropy per frame)

    def __post_init__(self) -> None:
        self.tasks = list(validate_tasks([t for t in self.tasks if t != "FA"]))
        if self.cuda and self.device == "cpu":
            self.device = "cuda"
        if self.lr_policy not in ("step", "cosine"):
            raise EMENetInputError(f"--lr_policy must be step or cosine, got {self.lr_policy!r}")
        if self.optimizer not in OPTIMIZERS:
            raise EMENetInputError(f"--optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.class_weights not in ("original", "dataset"):
            raise EMENetInputError(f"--class_weights must be original or dataset, got {self.class_weights!r}")
        from emenet.losses import check_loss_name
        for task, name in (("AU", self.au_loss), ("EXPR", self.expr_loss), ("VA", self.va_loss), ("FA", self.fa_loss)):
            try:
                check_loss_name(task, name)
            except ValueError as exc:
                raise EMENetInputError(f"--{task.lower()}_loss: {exc}") from None
        if not 0.0 <= self.mix_ground_truth <= 1.0:
            raise EMENetInputError(f"--mix_ground_truth must be in [0, 1], got {self.mix_ground_truth}")
        if self.distill_weights not in ("uniform", "certainty"):
            raise EMENetInputError(f"--distill_weights must be uniform or certainty, got {self.distill_weights!r}")
        if self.T <= 0:
            raise EMENetInputError(f"--T must be positive, got {self.T}")
        for key in ("seq_len", "batch_size", "nepochs", "val_seq_len", "image_size"):
            if getattr(self, key) < 1:
                raise EMENetInputError(f"--{key} must be positive, got {getattr(self, key)}")

    @property
    def model_tasks(self) -> tuple[str, ...]:
        return tuple(self.tasks) + (("FA",) if self.auxiliary else ())

    def model_config(self) -> EMENetConfig:
        return EMENetConfig(tasks=self.model_tasks, temporal_model=self.TModel, hidden_size=self.nhid,
                            num_layers=self.nlayers, dropout=self.dropout)

    @property
    def run_dir(self) -> Path:
        return Path(self.checkpoints_dir) / self.name

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> "TrainConfig":
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - valid)
        if unknown:
            raise EMENetInputError(f"{source}: unknown option(s) {unknown}")
        return cls(**d)


OPTIMIZERS = ("Adam", "AdamW", "SGD")

# Flags whose spelling differs from the field name (the original's typo included).
_ALIASES = {"auxiliary": ["--auxillary"]}
_HELP = {
    "load_epoch": "0 starts a new run; -1 resumes from the latest checkpoint; E resumes after epoch E",
    "tasks": "emotion tasks to learn (EXPR AU VA)",
    "TModel": "temporal model: GRU, LSTM, RNN_TANH, RNN_RELU or transformer",
    "auxiliary": "add the face-alignment head (needs --fa_teacher)",
    "config": "YAML file of defaults; command-line flags override it",
    "annotation": "students: the ensemble annotation directory to learn from",
}


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type = TrainConfig) -> None:
    """One flag per config field, every default None so that we can tell what was given."""
    parser.add_argument("--config", default=None, help=_HELP["config"])
    defaults = config_cls()
    for f in fields(config_cls):
        names = [f"--{f.name}"] + _ALIASES.get(f.name, [])
        default = getattr(defaults, f.name)
        help_text = f"{_HELP.get(f.name, '')} (default: {default})".strip()
        if isinstance(default, bool):
            parser.add_argument(*names, dest=f.name, action="store_true", default=None, help=help_text)
        elif isinstance(default, list):
            parser.add_argument(*names, dest=f.name, nargs="+", default=None, help=help_text)
        else:
            kind = type(default) if default is not None else (int if "max_" in f.name else str)
            parser.add_argument(*names, dest=f.name, type=kind, default=None, help=help_text)


def resolve_config(args: argparse.Namespace, config_cls: type = TrainConfig, **script_defaults) -> TrainConfig:
    """Dataclass defaults < the script's defaults < YAML file (--config) < command-line flags."""
    values: dict[str, Any] = dict(script_defaults)
    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise EMENetInputError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise EMENetInputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise EMENetInputError(f"{path}: expected a mapping of option: value")
        values.update(loaded)
    values.update({f.name: getattr(args, f.name) for f in fields(config_cls) if getattr(args, f.name, None) is not None})
    try:
        return config_cls.from_dict(values, source=args.config or "options")
    except TypeError as exc:
        raise EMENetInputError(f"bad option value: {exc}") from None


def save_config(config: TrainConfig, path: str | os.PathLike) -> None:
    from emenet.io_utils import write_atomic
    write_atomic(path, lambda p: p.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False)))
