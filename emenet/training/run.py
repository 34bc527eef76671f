"""Set up and run a teacher training from a TrainConfig: data, model, optimiser, hooks, resume."""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from emenet import losses as L
from emenet.data.affwild2 import load_affwild2_index
from emenet.data.audio_windows import attach_audio, default_audio_dir
from emenet.data.augment import AugmentConfig
from emenet.data.clips import LabeledVideo
from emenet.data.datasets import MultiTaskClipDataset, steps_per_epoch
from emenet.data.labeled import labeled_videos
from emenet.data.soft_labels import soft_label_videos
from emenet.data.student_frames import keep_labelled_frames
from emenet.errors import EMENetInputError
from emenet.fast.training import TrainSpeed
from emenet.io_utils import ensure_folder, remove_stale_temporaries_in
from emenet.models.checkpoint import read_checkpoint_file
from emenet.models.emenet import EMENet
from emenet.models.emenet_va import EMENetVA
from emenet.models.initialisation import initialise_like_original
from emenet.models.landmark_teacher import init_backbone_from_landmark_network, load_landmark_network
from emenet.models.marblenet import load_nemo_marblenet
from emenet.models.spec_augment import SpecAugmentConfig
from emenet.models.strict_load import load_state_dict_strict
from emenet.models.vad_teacher import load_vad_teacher
from emenet.evaluation.metrics import selection_metric
from emenet.run_layout import completed_epochs, net_file, optimizer_file
from emenet.tasks import AU_MISSING, DISTILL_KEY, EXPR_MISSING
from emenet.training.adaptive_lambda import OriginalAdaptiveTaskWeightHook
from emenet.training.config import TrainConfig, save_config
from emenet.training.evaluate import evaluate_videos
from emenet.training.hooks import AdaptiveTaskWeightHook, CheckpointHook, MetricsFileHook, TensorBoardHook
from emenet.training.objectives import StudentObjective, TaskWeights, TeacherObjective
from emenet.torch_files import load_torch_file
from emenet.training.trainer import Trainer

log = logging.getLogger(__name__)

TASK_SCORE_KEYS = {"AU": "AU_score", "EXPR": "EXPR_score", "VA": "VA_score"}


@dataclass
class RunResult:
    run_dir: Path
    best_epoch: int
    best_score: float
    history: list[dict[str, float]]


def resolve_device(config: TrainConfig) -> torch.device:
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise EMENetInputError(f"--device {config.device}: CUDA is not available on this machine")
    return device


def start_epoch_for(config: TrainConfig) -> int:
    """Which epoch to resume after (0 = fresh). A rerun resumes by default (`--load_epoch -1`, as the
    original did); `--overwrite` starts over; `--load_epoch 0` refuses to replace an existing run."""
    run_dir, done = config.run_dir, completed_epochs(config.run_dir, config.name)
    if config.overwrite and config.load_epoch in (0, -1):
        if done:
            log.warning("--overwrite: removing the existing run in %s", run_dir)
            shutil.rmtree(run_dir)
        return 0
    if config.load_epoch == 0:
        if done:
            raise EMENetInputError(f"{run_dir} already holds epochs {done}; pass --load_epoch -1 to resume "
                                   f"or --overwrite to start again")
        return 0
    if config.load_epoch == -1:
        if done:
            log.info("%s holds epochs %s: resuming after epoch %d (--overwrite starts over)", run_dir, done, done[-1])
        return done[-1] if done else 0
    if config.load_epoch not in done:
        raise EMENetInputError(f"{run_dir}: no complete checkpoint for epoch {config.load_epoch} (have {done})")
    return config.load_epoch


def class_weights(config: TrainConfig, videos: list[LabeledVideo], num_expr_classes: int = len(L.EXPR_CLASS_WEIGHT)
                  ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """AU pos_weight and EXPR class weights: the original's constants or the training set's frequencies.

    The original's EXPR weights exist for its 7 classes only; with 8 (`Other`) the EXPR weights
    come from the training set's frequencies by the same rule (1 / frequency).
    """
    au = [np.where(v.masks["AU"], v.labels["AU"], AU_MISSING) for v in videos if "AU" in v.labels]
    ex = [np.where(v.masks["EXPR"][:, 0], v.labels["EXPR"][:, 0], EXPR_MISSING) for v in videos if "EXPR" in v.labels]
    dataset_expr = (L.expr_weight_from_labels(torch.from_numpy(np.concatenate(ex)).long(), num_expr_classes)
                    if ex else None)
    if config.class_weights == "original":
        if num_expr_classes == len(L.EXPR_CLASS_WEIGHT):
            return torch.tensor(L.AU_POS_WEIGHT), torch.tensor(L.EXPR_CLASS_WEIGHT)
        log.info("--class_weights original: the original's EXPR weights are for 7 classes; with %d the EXPR "
                 "weights come from the training set's frequencies", num_expr_classes)
        return torch.tensor(L.AU_POS_WEIGHT), dataset_expr
    pos = L.au_pos_weight_from_labels(torch.from_numpy(np.concatenate(au))) if au else None
    return pos, dataset_expr


def task_weights(config: TrainConfig) -> TaskWeights:
    """The trained heads' lambdas; with `--lambda_normalisation all` the model's other lambdas join the sum."""
    every_head = ("AU", "EXPR", "VA", "FA") + (("VAD",) if config.audiovisual else ())
    lambdas = {t: config.loss_weights[t] for t in every_head}
    active = {t: lambdas[t] for t in config.model_tasks}
    inactive = {t: w for t, w in lambdas.items() if t not in active} if config.lambda_normalisation == "all" else {}
    return TaskWeights(active, inactive=inactive)


def check_epoch_length(config: TrainConfig, train_set: MultiTaskClipDataset) -> None:
    """Refuse, in one line, a training set whose epoch would have no step."""
    sizes = {t: len(r) for t, r in train_set.task_ranges.items()}
    if not any(sizes.values()):
        raise EMENetInputError(f"{config.data_root}: no training clips of {config.seq_len} frames for any task "
                               f"(--clips {config.clips}); lower --seq_len or use --clips masked")
    if config.max_steps_per_epoch is None:
        try:
            steps_per_epoch(sizes, config.batch_size, config.epoch_length)
        except ValueError as exc:
            raise EMENetInputError(f"{config.data_root}: {exc}") from None


def build_optimizer(config: TrainConfig, model: EMENet) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "SGD":
        momentum = config.sgd_momentum if config.sgd_momentum is not None else (0.0 if config.audiovisual else 0.5)
        return torch.optim.SGD(params, lr=config.lr, momentum=momentum, weight_decay=config.weight_decay)
    cls = torch.optim.AdamW if config.optimizer == "AdamW" else torch.optim.Adam
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def build_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer) -> tuple[torch.optim.lr_scheduler.LRScheduler, bool]:
    """(scheduler, stepped per iteration?) for `--lr_policy step` (per epoch) or `cosine` (per iteration)."""
    if config.lr_policy == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.T_max), True
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_decay_epochs, gamma=0.1), False


def build_model(config: TrainConfig, num_expr_classes: int = 7) -> EMENet:
    """EMENet-V, or EMENet-VA for `--modality audiovisual`, with the optional pretrained backbones;
    its EXPR head has the training data's `num_expr_classes` (7, or 8 with `Other`)."""
    torch.manual_seed(config.seed)
    model_config = config.model_config(num_expr_classes)
    model = EMENetVA(model_config) if config.audiovisual else EMENet(model_config)
    if config.init == "original":
        initialise_like_original(model, config.audiovisual)
    warn_if_from_scratch(config)
    if config.pretrained_backbone:
        init_backbone_from_landmark_network(model, config.pretrained_backbone)
    if config.pretrained_audio_backbone:
        if not config.audiovisual:
            raise EMENetInputError("--pretrained_audio_backbone needs the audio-visual model (--modality audiovisual)")
        init_audio_backbone(model, config.pretrained_audio_backbone)
    return model


def warn_if_from_scratch(config: TrainConfig) -> None:
    """One warning line when a branch starts from random weights: the original never did (README: 'Pretrained backbones')."""
    missing = [] if config.pretrained_backbone else ["--pretrained_backbone mobilefacenet_model_best.pth.tar"]
    if config.audiovisual and not config.pretrained_audio_backbone:
        missing.append("--pretrained_audio_backbone vad_marblenet.nemo")
    if missing:
        log.warning("training from scratch: the original always started from pretrained weights; pass %s",
                    " and ".join(missing))


def init_audio_backbone(model: EMENetVA, path: str) -> None:
    """Initialise the audio branch from a NeMo MarbleNet 3x2x64 (its classification decoder dropped)."""
    net = load_nemo_marblenet(path)
    load_state_dict_strict(model.audio_backbone, net.state_dict(), str(path))


def audio_dir_of(config: TrainConfig) -> Path:
    """Where decoded tracks live: --audio_dir, else <cache_dir>/audio, else <data_root>/.emenet_cache/audio."""
    return Path(config.audio_dir) if config.audio_dir else default_audio_dir(config.data_root, config.cache_dir)


def train_teacher(config: TrainConfig, progress: bool = True) -> RunResult:
    """Train (or resume) a supervised multitask teacher; returns the run's history and best epoch.

    >>> result = train_teacher(TrainConfig(data_root="data/synth", nepochs=2, seq_len=8))  # doctest: +SKIP
    """
    return _train(config, progress, student=False)


def train_student(config: TrainConfig, progress: bool = True) -> RunResult:
    """Train (or resume) a student on an ensemble's soft labels (`config.annotation`).

    >>> result = train_student(TrainConfig(data_root="data/synth", annotation="ann/round_0"))  # doctest: +SKIP
    """
    if not config.annotation:
        raise EMENetInputError("--annotation is required: the ensemble annotation directory to learn from")
    return _train(config, progress, student=True)


def _train(config: TrainConfig, progress: bool, student: bool) -> RunResult:
    if not config.data_root:
        raise EMENetInputError("--data_root is required (the Aff-wild2 root, or `emenet synth` output)")
    if "FA" in config.auxiliary and not config.fa_teacher:
        raise EMENetInputError("--auxiliary needs --fa_teacher PATH: the MobileFaceNet-136 landmark checkpoint that teaches the FA head")
    device = resolve_device(config)
    start = start_epoch_for(config)
    index = load_affwild2_index(config.data_root, cache_dir=config.cache_dir, annotations_dir=config.annotations_dir,
                                crops_dirs=config.crops_dir or None)
    num_expr_classes = index.num_expr_classes
    tasks = tuple(config.tasks)
    train_videos = labeled_videos(index, "Train_Set", tasks)
    val_videos = labeled_videos(index, "Validation_Set", tasks, max_videos=config.max_val_videos)
    if not train_videos:
        raise EMENetInputError(f"{config.data_root}: no training videos annotated for {list(tasks)}")
    layout = None
    clip_videos, clip_tasks = train_videos, tasks
    if student:
        clip_videos, layout = soft_label_videos(config.annotation, config.data_root, "Train_Set", tasks)
        if config.student_frames == "labelled":
            clip_videos = keep_labelled_frames(clip_videos, layout)
        clip_tasks = (DISTILL_KEY,)
    audio_window, vad = None, "VAD" in config.auxiliary
    if config.audiovisual:  # decode (once) and attach every video's audio; the VAD teacher's targets too
        audio_window, audio_dir = config.audio_window, audio_dir_of(config)
        teacher = load_vad_teacher(config.vad_teacher) if vad else None
        role = "student" if student else "teacher"
        clip_videos = attach_audio(clip_videos, index, audio_dir, config.sr, teacher, audio_window, progress,
                                   timing=config.audio_timing, legacy_role=role)
        val_videos = attach_audio(val_videos, index, audio_dir, config.sr, progress=progress,
                                  timing=config.audio_timing, legacy_role="inference")
    train_set = MultiTaskClipDataset(clip_videos, clip_tasks, config.seq_len, config.fps, config.image_size,
                                     audio_window, vad, clips=config.clips)
    check_epoch_length(config, train_set)
    log.info("training on %d videos (%s clips), validating on %d videos", len(train_videos),
             {t: len(r) for t, r in train_set.task_ranges.items()}, len(val_videos))

    model = build_model(config, num_expr_classes).to(device)
    model.backbone.checkpoint_activations = config.activation_checkpointing
    if config.audiovisual and config.audio_augment == "specaugment":
        model.audio_backbone.spec_augment = SpecAugmentConfig()
    pos_weight, expr_weight = class_weights(config, train_videos, num_expr_classes)
    landmarks = load_landmark_network(config.fa_teacher, device) if "FA" in config.auxiliary else None
    objective = TeacherObjective(config.au_loss, config.expr_loss, config.va_loss, config.fa_loss, pos_weight, expr_weight,
                                 landmarks, ccc_form=config.loss_ccc, vad_grad=student or config.vad_teacher_grad == "train")
    if student:
        objective = StudentObjective(layout, config.T, config.mix_ground_truth, config.distill_weights, objective, landmarks,
                                     ccc_form=config.loss_ccc)
    optimizer = build_optimizer(config, model)
    scheduler, per_step = build_scheduler(config, optimizer)
    weights = task_weights(config)

    run_dir = config.run_dir
    ensure_folder(run_dir)
    remove_stale_temporaries_in(run_dir)  # what a run killed while writing left behind
    save_config(config, run_dir / "config.yaml")
    select = selection_metric(config.metric, index.release)
    log.info("%s data: the best epoch is the one with the highest validation %s", index.release, select)
    # the net checkpoint is written last: an epoch whose net file exists has all its files
    hooks = [MetricsFileHook(run_dir),
             CheckpointHook(run_dir, config.name, extra={"train_config": config.to_dict(), "role": "student" if student else "teacher",
                                                         "dataset_release": index.release, "select_metric": select}),
             TensorBoardHook(Path(config.loggings_dir) / config.name)]
    if config.adaptive_lambda == "original":
        hooks.insert(0, OriginalAdaptiveTaskWeightHook({t: TASK_SCORE_KEYS[t] for t in tasks}))
    elif config.adaptive_lambda == "reset":
        hooks.insert(0, AdaptiveTaskWeightHook({t: TASK_SCORE_KEYS[t] for t in tasks}))

    def evaluate(m: EMENet) -> dict[str, float]:
        return evaluate_videos(m, val_videos, config.val_seq_len, config.image_size, device, config.num_workers, progress)

    trainer = Trainer(model, objective, optimizer, scheduler, per_step, train_set, evaluate, weights,
                      AugmentConfig(image_size=config.image_size, mode=config.augment), config.batch_size, config.nepochs, config.seed,
                      device, steps_per_epoch=config.max_steps_per_epoch, num_workers=config.num_workers, hooks=hooks,
                      progress=progress,
                      speed=TrainSpeed.from_options(config.train_speed, device, config.bf16, config.compile),
                      select_metric=select, teacher_step=config.teacher_step, epoch_length=config.epoch_length)
    if start:
        resume(trainer, run_dir, config.name, start)
    state = trainer.run()
    return RunResult(run_dir, state.best_epoch, state.best_score, state.history)


def resume(trainer: Trainer, run_dir: Path, name: str, epoch: int) -> None:
    """Load the weights, optimizer, scheduler, RNG and trainer state written after `epoch`."""
    path = net_file(run_dir, name, epoch)
    net = read_checkpoint_file(path)
    load_state_dict_strict(trainer.model, net["state_dict"], str(path))
    opt_file = optimizer_file(run_dir, epoch)
    trainer.load_state_dict(load_torch_file(opt_file, "optimizer state"))
    log.info("resumed %s after epoch %d", name, epoch)
