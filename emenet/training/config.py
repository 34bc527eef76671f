"""Training options: one dataclass, YAML defaults under command-line flags, saved with each run.

Option names follow the original `train_teacher.py` (`--TModel`, `--nhid`, `--lr_policy`, ...) so
its users' commands keep working; its defaults are those of the original's last commit (see the
reference README, "The original's training recipe"): the visual tree's here, the visual-audio
tree's (`Train_Multimodal/`) in AUDIOVISUAL_TREE_DEFAULTS, applied with `--modality audiovisual`.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from emenet import run_layout
from emenet.errors import EMENetInputError
from emenet.models.emenet import EMENetConfig
from emenet.models.emenet_va import EMENetVAConfig
from emenet.models.mobilefacenet import INPUT_SIZE
from emenet.tasks import EMOTION_TASKS, validate_tasks


@dataclass
class TrainConfig:
    # run
    name: str = "teacher_exp_0"
    checkpoints_dir: str = "./checkpoints"
    loggings_dir: str = "./loggings"
    load_epoch: int = -1  # -1: resume from the latest checkpoint (a new run when there is none); 0: new run; E: after epoch E
    overwrite: bool = False
    seed: int = 0
    device: str = "cpu"
    cuda: bool = False  # the original's flag; same as --device cuda
    num_workers: int = 1
    train_speed: str = "fast"  # fast: channels-last (+ retained allocator memory, lean activations on the CPU); plain: the obvious step
    bf16: bool = False  # autocast the forward to bfloat16 (GPUs with bf16 units)
    compile: bool = False  # torch.compile the model's forward
    # data
    data_root: str = ""
    annotations_dir: str | None = None  # the annotation folder when it is not under data_root (any release's layout)
    crops_dir: list[str] = field(default_factory=list)  # crop folders; default: every cropped_aligned* of data_root
    dataset_names: list[str] = field(default_factory=lambda: ["Aff_wild2"])
    cache_dir: str | None = None
    tasks: list[str] = field(default_factory=lambda: list(EMOTION_TASKS))
    seq_len: int = 16
    fps: int = 30
    batch_size: int = 5  # clips per task per step
    image_size: int = INPUT_SIZE
    val_seq_len: int = 64  # validation chunk length; the hidden state is carried along each video
    max_steps_per_epoch: int | None = None  # cap for quick runs; default: longest task's clips / batch_size
    max_val_videos: int | None = None
    # model
    TModel: str = "GRU"
    nhead: int = 2  # attention heads of the transformer temporal model (the original's)
    nhid: int = 128
    nlayers: int = 1
    dropout: float = 0.5
    # auxiliary heads: FA (face alignment, a fixed landmark network teaches it) and, for the
    # audio-visual model, VAD (voice activity, a fixed VAD model teaches it). A bare
    # `--auxiliary` means FA, as in the original visual tree; True/False are read as [FA]/[].
    auxiliary: list[str] = field(default_factory=list)
    fa_teacher: str | None = None  # MobileFaceNet-136 checkpoint (mobilefacenet_model_best.pth.tar)
    pretrained_backbone: str | None = None  # same format; initialises the backbone as the original did
    # audio (the audio-visual model, EMENet-VA; Train_Multimodal/ sets modality audiovisual)
    modality: str = "visual"  # visual: EMENet-V; audiovisual: EMENet-VA
    window_size: float = 0.63  # seconds of audio per frame, centred on it (the original's)
    sr: int = 16000  # audio sample rate; MarbleNet's front end is fixed at 16 kHz
    audio_dir: str | None = None  # decoded tracks (extract_audio_files.py); default <cache_dir>/audio
    vad_teacher: str | None = None  # NeMo vad_marblenet .nemo file; default: silero-vad (the `vad` extra)
    pretrained_audio_backbone: str | None = None  # a NeMo MarbleNet 3x2x64 .nemo file for the audio branch
    # optimisation
    optimizer: str = "Adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_policy: str = "step"
    lr_decay_epochs: int = 3
    T_max: int = 20000
    nepochs: int = 10
    # losses
    au_loss: str = "bce"
    expr_loss: str = "ce"
    va_loss: str = "ccc"
    fa_loss: str = "l1_loss"
    lambda_AU: float = 1.0
    lambda_EXPR: float = 1.0
    lambda_VA: float = 1.0
    lambda_FA: float = 1.0
    lambda_VAD: float = 1.0
    adaptive_lambda: str = "original"  # original | reset | off (emenet.training.adaptive_lambda)
    class_weights: str = "original"  # original | dataset (from the training set's label frequencies)
    metric: str = "auto"  # the validation score that picks the best epoch: auto (the data's release), a release, or a score key
    # students (train_student.py)
    annotation: str | None = None  # an ensemble annotation directory (create_new_annotations.py)
    T: float = 1.0  # distillation temperature
    mix_ground_truth: float = 0.0  # weight of the supervised loss on frames with ground truth, in [0, 1]
    distill_weights: str = "uniform"  # uniform | certainty (1 - the ensemble's normalised entropy per frame)
    student_frames: str = "labelled"  # labelled: frames with ground truth for some task (original); all
    # the original's recipe, element by element, and EMENet's changes as named switches
    # (docs/ORIGINAL_VS_EMENET.md has one row per switch)
    teacher_step: str = "per_task"  # per_task: a forward pass per task's batch (original); concat: one pass
    activation_checkpointing: bool = False  # recompute the backbone's activations in backward (less memory)
    epoch_length: str = "shortest"  # shortest: the shortest task's batches (original); longest: the longest task's
    clips: str = "labelled"  # labelled: runs of labelled frames (original); masked: every crop frame, masked
    init: str = "original"  # original: Kaiming fan-out backbone, uniform VA decoders; torch: PyTorch's defaults
    sgd_momentum: float | None = None  # --optimizer SGD: default the original's, 0.5 visual and 0 audio-visual
    audio_augment: str = "specaugment"  # specaugment: NeMo MarbleNet's spectrogram masks in training (original); none
    audio_timing: str = "exact"  # exact: windows centred on (k + 0.5) / fps; legacy: the original's drifting ones
    loss_ccc: str = "sample"  # CCC in the VA losses: sample (ddof 1 and eps, the original's) | population
    vad_teacher_grad: str = "train"  # train: teachers learn the VAD head; legacy: its loss without gradient (original)
    augment: str = "per_frame"  # per_frame: jitter and flip drawn per frame, uint8 steps (original); per_clip
    lambda_normalisation: str = "all"  # all: over every lambda of the model (original); active: the trained heads'

    def __post_init__(self) -> None:
        self.tasks = list(validate_tasks([t for t in self.tasks if t not in AUXILIARY_HEADS]))
        self.auxiliary = _auxiliary_list(self.auxiliary)
        if self.modality not in MODALITIES:
            raise EMENetInputError(f"--modality must be one of {list(MODALITIES)}, got {self.modality!r}")
        if "VAD" in self.auxiliary and self.modality != "audiovisual":
            raise EMENetInputError("--auxiliary VAD needs the audio-visual model (--modality audiovisual)")
        if self.window_size <= 0 or self.sr <= 0:
            raise EMENetInputError(f"--window_size and --sr must be positive, got {self.window_size} and {self.sr}")
        self.model_config()  # the model's own checks as one-line errors (--nhead; the audio model's 16 kHz and window)
        if self.cuda and self.device == "cpu":
            self.device = "cuda"
        if self.train_speed not in TRAIN_SPEEDS:
            raise EMENetInputError(f"--train_speed must be one of {list(TRAIN_SPEEDS)}, got {self.train_speed!r}")
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
        from emenet.evaluation.metrics import check_metric_name
        check_metric_name(self.metric)
        _check_choice("teacher_step", self.teacher_step, TEACHER_STEPS)
        if isinstance(self.adaptive_lambda, bool):  # configs written before it had three rules
            self.adaptive_lambda = "reset" if self.adaptive_lambda else "off"
        _check_choice("adaptive_lambda", self.adaptive_lambda, ("original", "reset", "off"))
        _check_choice("augment", self.augment, ("per_frame", "per_clip"))
        _check_choice("init", self.init, ("original", "torch"))
        if isinstance(self.sgd_momentum, str):  # the flag's value arrives as text (no default type to go by)
            try:
                self.sgd_momentum = float(self.sgd_momentum)
            except ValueError:
                raise EMENetInputError(f"--sgd_momentum must be a number, got {self.sgd_momentum!r}") from None
        _check_choice("student_frames", self.student_frames, ("labelled", "all"))
        _check_choice("audio_augment", self.audio_augment, ("specaugment", "none"))
        _check_choice("audio_timing", self.audio_timing, ("exact", "legacy"))
        _check_choice("loss_ccc", self.loss_ccc, ("sample", "population"))
        _check_choice("vad_teacher_grad", self.vad_teacher_grad, ("train", "legacy"))
        _check_choice("lambda_normalisation", self.lambda_normalisation, ("all", "active"))
        _check_choice("epoch_length", self.epoch_length, ("shortest", "longest"))
        _check_choice("clips", self.clips, ("labelled", "masked"))
        for key in ("seq_len", "batch_size", "nepochs", "val_seq_len", "image_size", "fps", "nhid", "nlayers",
                    "lr_decay_epochs", "T_max"):
            if getattr(self, key) < 1:
                raise EMENetInputError(f"--{key} must be positive, got {getattr(self, key)}")
        for key in ("lr", "weight_decay", "num_workers"):  # torch's optimizers and loaders refuse negatives
            if getattr(self, key) < 0:
                raise EMENetInputError(f"--{key} must not be negative, got {getattr(self, key)}")
        for key in ("max_steps_per_epoch", "max_val_videos"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise EMENetInputError(f"--{key} must be at least 1 (leave it out for no cap), got {getattr(self, key)}")
        if not 0.0 <= self.dropout <= 1.0:
            raise EMENetInputError(f"--dropout must be in [0, 1], got {self.dropout}")

    @property
    def model_tasks(self) -> tuple[str, ...]:
        return tuple(self.tasks) + tuple(self.auxiliary)

    @property
    def audiovisual(self) -> bool:
        return self.modality == "audiovisual"

    @property
    def audio_window(self) -> int:
        """Samples per frame's audio window: round(window_size * sr), 10080 by default."""
        return int(round(self.window_size * self.sr))

    @property
    def loss_weights(self) -> dict[str, float]:
        """Each head's loss weight, task -> `--lambda_<TASK>` (VAD: the audio-visual model's only)."""
        return {"AU": self.lambda_AU, "EXPR": self.lambda_EXPR, "VA": self.lambda_VA, "FA": self.lambda_FA,
                "VAD": self.lambda_VAD}

    def model_config(self, num_expr_classes: int = 7) -> EMENetConfig:
        """EMENetConfig, or EMENetVAConfig (with the audio window) for the audio-visual model.

        `num_expr_classes` follows the training data (7 for the 2nd ABAW, 8 from the 3rd on).
        """
        common = dict(tasks=self.model_tasks, temporal_model=self.TModel, hidden_size=self.nhid,
                      num_layers=self.nlayers, dropout=self.dropout, num_expr_classes=num_expr_classes,
                      num_heads=self.nhead)
        if self.audiovisual:
            return EMENetVAConfig(**common, audio_window=self.audio_window, sample_rate=self.sr,
                                  audio_timing=self.audio_timing)
        return EMENetConfig(**common)

    @property
    def run_dir(self) -> Path:
        return run_layout.run_dir(self.checkpoints_dir, self.name)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> "TrainConfig":
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - valid)
        if unknown:
            raise EMENetInputError(f"{source}: unknown option(s) {unknown}")
        return cls(**d)


# The original visual-audio tree's defaults where they differ from the visual tree's
# (Train_Multimodal/options/base_options.py); used for `--modality audiovisual` unless given.
AUDIOVISUAL_TREE_DEFAULTS: dict[str, Any] = {"seq_len": 8, "batch_size": 8, "lr_decay_epochs": 4, "nepochs": 15}

OPTIMIZERS = ("Adam", "AdamW", "SGD")
TEACHER_STEPS = ("per_task", "concat")


def _check_choice(option: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise EMENetInputError(f"--{option} must be one of {list(choices)}, got {value!r}")

TRAIN_SPEEDS = ("fast", "plain")
MODALITIES = ("visual", "audiovisual")
AUXILIARY_HEADS = ("FA", "VAD")


def _auxiliary_list(value: Any) -> list[str]:
    """[] / [FA] / [VAD] / [FA, VAD] from a list, a name, or the original's boolean flag (True = FA)."""
    if value is None or value is False:
        return []
    if value is True:
        return ["FA"]
    names = [value] if isinstance(value, str) else list(value)
    unknown = [n for n in names if n not in AUXILIARY_HEADS]
    if unknown:
        raise EMENetInputError(f"--auxiliary: unknown head(s) {unknown}; valid ones are {list(AUXILIARY_HEADS)}")
    return [h for h in AUXILIARY_HEADS if h in names]


class _AuxiliaryAction(argparse.Action):
    """`--auxiliary` alone means FA (the original's flag); `--auxiliary VAD`, `--auxiliary FA VAD` name heads."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, list(values) if values else ["FA"])

# Flags whose spelling differs from the field name (the original's typo included).
_ALIASES = {"auxiliary": ["--auxillary"], "cuda": ["--use_cuda"]}
_HELP = {
    "load_epoch": "-1 resumes from the latest checkpoint (a new run when there is none); 0 starts a new run "
                  "(refused over an existing one without --overwrite); E resumes after epoch E",
    "tasks": "emotion tasks to learn (EXPR AU VA)",
    "TModel": "temporal model: GRU, LSTM, RNN_TANH, RNN_RELU or transformer",
    "auxiliary": "auxiliary heads: bare = FA (needs --fa_teacher); VAD (audio-visual model) or FA VAD",
    "modality": "visual (EMENet-V) or audiovisual (EMENet-VA)",
    "vad_teacher": "NeMo vad_marblenet .nemo teaching the VAD head (default: silero-vad, pip install 'emenet[vad]')",
    "config": "YAML file of defaults; command-line flags override it",
    "train_speed": "fast: channels-last clips and model (and, on the CPU, freed memory kept for the next step and "
                   "batch norm + PReLU keeping fewer activations); "
                   "plain: the obvious step. Same losses up to rounding",
    "bf16": "autocast the forward to bfloat16 (for GPUs; CPUs without bf16 units get slower)",
    "compile": "torch.compile the training step's forward (first use about a minute, cached after; worth it for "
               "runs of hundreds of steps; falls back to eager with a warning where it cannot compile)",
    "annotation": "students: the ensemble annotation directory to learn from",
    "annotations_dir": "the folder holding the annotations of any Aff-wild2 release (default: found under --data_root)",
    "crops_dir": "folders of face crops <name>/<frame>.jpg, searched in order (default: every cropped_aligned* "
                 "folder of --data_root)",
    "metric": "validation score that picks the best epoch: auto (the data's release: abaw2 total_score, later "
              "releases abaw3_score), abaw2, abaw3, abaw5, abaw6, mtl, or a score such as EXPR_f1",
    "nhead": "attention heads of --TModel transformer",
    "teacher_step": "per_task: each task's batch through its own forward pass, as the original (batch-norm "
                    "statistics per task); concat: one pass over all tasks' clips",
    "epoch_length": "shortest: an epoch has the shortest task's number of full batches, larger tasks giving a fresh "
                    "random subset (the original); longest: the longest task's, smaller tasks repeating",
    "clips": "labelled: runs of seq_len frames with a crop and a label, tails dropped (the original); masked: every "
             "crop frame, unlabelled ones masked, short videos padded",
    "init": "original: Kaiming normal (fan-out) for the backbone's convolutions and, for the audio-visual model, "
            "decoders uniform in [-0.1, 0.1] (the original's); torch: PyTorch's default initialisation",
    "sgd_momentum": "momentum of --optimizer SGD (default: the original's, 0.5 visual, 0 audio-visual)",
    "student_frames": "students: labelled: learn only on frames with a ground-truth label for some task (the "
                      "original's); all: on every crop frame the ensemble annotated",
    "audio_augment": "specaugment: the audio branch masks its MFCCs in training as NeMo's MarbleNet did (5 cut-outs, "
                     "2 frequency bands, 2 time spans; the original's); none",
    "audio_timing": "exact: each frame's audio window centred on it; legacy: the original's windows, timed with "
                    "round(fps) + 1 (+ 2 for students), about 3%% ahead of the video (to rerun its checkpoints)",
    "loss_ccc": "sample: the CCC inside the VA losses with sample standard deviations (ddof 1) and the original's "
                "epsilon; population: ddof 0, the challenge metric's form (the metric itself never changes)",
    "vad_teacher_grad": "train: teachers learn the VAD head; legacy: the original teachers computed its loss under "
                        "no_grad, so it never trained (students always train it)",
    "augment": "per_frame: ColorJitter(0.3, 0.3, 0.3) and a flip drawn for every frame, each adjustment quantised "
               "to uint8 as on PIL images (the original's); per_clip: drawn once per clip",
    "adaptive_lambda": "original: a task's lambda becomes log2(n) once it has gone n > 1 epochs without beating its "
                       "best validation score (never reset; the original's); reset: back to its base on improvement, "
                       "log2(n) once above 1; off",
    "lambda_normalisation": "all: divide by the sum of all the model's lambdas, trained or not (the original's); "
                            "active: by the trained heads' only",
    "activation_checkpointing": "recompute the backbone's activations during backward: less memory, ~1/3 more "
                                "compute (batch-norm running statistics then see each batch twice)",
}


def add_config_arguments(parser: argparse.ArgumentParser, config_cls: type = TrainConfig,
                         exclude: tuple[str, ...] = ()) -> None:
    """One flag per config field (but `exclude`), every default None so that we can tell what was given."""
    parser.add_argument("--config", default=None, help=_HELP["config"])
    defaults = config_cls()
    for f in fields(config_cls):
        if f.name in exclude:
            continue
        names = [f"--{f.name}"] + _ALIASES.get(f.name, [])
        default = getattr(defaults, f.name)
        help_text = f"{_HELP.get(f.name, '')} (default: {default})".strip()
        if f.name == "auxiliary":
            parser.add_argument(*names, dest=f.name, nargs="*", action=_AuxiliaryAction, default=None,
                                metavar="HEAD", help=help_text)
        elif isinstance(default, bool):
            parser.add_argument(*names, dest=f.name, action="store_true", default=None, help=help_text)
        elif isinstance(default, list):
            parser.add_argument(*names, dest=f.name, nargs="+", default=None, help=help_text)
        else:
            kind = type(default) if default is not None else (int if "max_" in f.name else str)
            parser.add_argument(*names, dest=f.name, type=kind, default=None, help=help_text)


def resolve_config(args: argparse.Namespace, config_cls: type = TrainConfig, **script_defaults) -> TrainConfig:
    """Dataclass defaults < the script's defaults < YAML file (--config) < command-line flags; the
    visual-audio tree's defaults fill what none of them set when the modality is audiovisual."""
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
        values.update(_check_numbers(loaded, config_cls, path))
    values.update({f.name: getattr(args, f.name) for f in fields(config_cls) if getattr(args, f.name, None) is not None})
    if values.get("modality") == "audiovisual":
        for key, value in AUDIOVISUAL_TREE_DEFAULTS.items():
            values.setdefault(key, value)
    try:
        return config_cls.from_dict(values, source=args.config or "options")
    except TypeError as exc:
        raise EMENetInputError(f"bad option value: {exc}") from None


def _check_numbers(loaded: dict[str, Any], config_cls: type, path: Path) -> dict[str, Any]:
    """The YAML values of numeric options as numbers, or one line naming the file (`lr: fast`).
    The command line's types are argparse's; a config file's reach the dataclass as YAML read
    them, and YAML reads `1e-3` (no dot) as text: such text is taken as the number it spells."""
    checked = dict(loaded)
    for f in fields(config_cls):
        if f.name not in loaded:
            continue
        value, kinds = loaded[f.name], {k.strip() for k in str(f.type).split("|")}
        if value is None and "None" in kinds:
            continue
        if "float" in kinds and isinstance(value, str):
            try:
                checked[f.name] = value = float(value)
            except ValueError:
                pass
        if "int" in kinds and not (isinstance(value, int) and not isinstance(value, bool)):
            raise EMENetInputError(f"{path}: {f.name} must be a whole number, got {value!r}")
        if "float" in kinds and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
            raise EMENetInputError(f"{path}: {f.name} must be a number, got {value!r}")
    return checked


def save_config(config: TrainConfig, path: str | os.PathLike) -> None:
    from emenet.io_utils import write_atomic
    write_atomic(path, lambda p: p.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False)))
