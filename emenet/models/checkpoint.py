"""Reading and writing EMENet checkpoints, ours and the original released ones.

Both are a `torch.save` of a dict with `state_dict` and `epoch`; ours add the model
`config` and `arch` (the model's class name), so a checkpoint rebuilds its own model.
Original checkpoints carry no config: it is inferred from the key set and shapes (EMENet-V:
`backbone.*`; EMENet-VA: `video_backbone.*` + `audio_backbone.*`), then the weights go
through a strict filter.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from emenet.errors import EMENetInputError
from emenet.io_utils import save_torch
from emenet.models.emenet import EMENet, EMENetConfig
from emenet.models.emenet_va import EMENetVA, EMENetVAConfig
from emenet.models.strict_load import load_state_dict_strict
from emenet.tasks import EXPR_CLASS_COUNTS, EXPR_NAMES, TASKS
from emenet.torch_files import load_torch_file

CHECKPOINT_FORMAT = 1
_TMODEL_KEY = re.compile(r"^tmodels\.(\d+)\.(.*)$")
_LOGITS_TO_TASK = {**{spec.num_logits: name for name, spec in TASKS.items()}, **{k: "EXPR" for k in EXPR_CLASS_COUNTS}}
# `arch` of our checkpoints -> the model class and its config class.
ARCHITECTURES: dict[str, tuple[type[EMENet], type[EMENetConfig]]] = {
    "EMENet": (EMENet, EMENetConfig),
    "EMENetVA": (EMENetVA, EMENetVAConfig),
}
_CONFIG_TO_MODEL = {config_cls: model_cls for model_cls, config_cls in ARCHITECTURES.values()}


def read_checkpoint_file(path: str | os.PathLike, allow_bare_state_dict: bool = False) -> dict[str, Any]:
    """`torch.load(weights_only=True)` with one-line errors for missing or foreign files.

    With `allow_bare_state_dict`, a file holding only a state dict is wrapped as {'state_dict': ...}.
    """
    path = Path(path)
    ckpt = load_torch_file(path, "checkpoint")
    if allow_bare_state_dict and isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        ckpt = {"state_dict": ckpt}
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise EMENetInputError(f"{path}: not an EMENet checkpoint (no 'state_dict' entry)")
    return ckpt


def _config_class(state_dict: dict[str, torch.Tensor]) -> type[EMENetConfig]:
    """EMENet-V (`backbone.*`) or EMENet-VA (`video_backbone.*` + `audio_backbone.*`), by key prefixes."""
    prefixes = {key.split(".", 1)[0] for key in state_dict}
    if {"video_backbone", "audio_backbone"} <= prefixes:
        return EMENetVAConfig
    if "backbone" in prefixes:
        return EMENetConfig
    if prefixes & {"video_backbone", "audio_backbone"}:
        missing = sorted({"video_backbone", "audio_backbone"} - prefixes)
        raise EMENetInputError(f"state dict of an EMENet-VA model without its '{missing[0]}.*' keys")
    raise EMENetInputError("state dict has neither the 'backbone.*' keys of an EMENet-V model nor the "
                           "'video_backbone.*' and 'audio_backbone.*' keys of an EMENet-VA model")


def infer_config(state_dict: dict[str, torch.Tensor], temporal_model: str | None = None) -> tuple[EMENetConfig, dict[int, str]]:
    """Infer the model config of an original checkpoint and the task of each `tmodels.{i}`.

    The config is an `EMENetVAConfig` for EMENet-VA keys (its audio window is the original's
    0.63 s, which the weights do not record), else an `EMENetConfig`. `temporal_model`
    disambiguates RNN_TANH from RNN_RELU, which share their shapes.
    """
    config_cls = _config_class(state_dict)
    heads: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in state_dict.items():
        m = _TMODEL_KEY.match(key)
        if m:
            heads.setdefault(int(m.group(1)), {})[m.group(2)] = value
    if not heads:
        raise EMENetInputError("state dict has no 'tmodels.*' keys: no temporal heads of an EMENet model")
    head_tasks: dict[int, str] = {}
    for i, params in sorted(heads.items()):
        missing = [f"tmodels.{i}.{k}" for k in ("decoder.weight", "decoder.bias") if k not in params]
        if missing:
            raise EMENetInputError(f"state dict lacks {', '.join(missing)}: the decoder of temporal head {i} "
                                   "(a truncated or edited checkpoint?)")
        width = params["decoder.weight"].shape[0]
        if width not in _LOGITS_TO_TASK:
            raise EMENetInputError(f"tmodels.{i}: decoder width {width} matches no task {list(_LOGITS_TO_TASK)}")
        head_tasks[i] = _LOGITS_TO_TASK[width]
    first = heads[min(heads)]
    missing = [f"tmodels.{min(heads)}.{k}" for k in ("rnn.weight_ih_l0", "rnn.weight_hh_l0") if k not in first]
    if missing:
        raise EMENetInputError(f"state dict lacks {', '.join(missing)}: no recurrent layer to infer the config from")
    hidden = first["rnn.weight_hh_l0"].shape[1]
    gates = first["rnn.weight_ih_l0"].shape[0] // hidden
    kind = {3: "GRU", 4: "LSTM", 1: temporal_model or "RNN_TANH"}.get(gates)
    if kind is None:
        raise EMENetInputError(f"tmodels.0.rnn has {gates} gates; expected a GRU, LSTM or RNN")
    num_layers = sum(1 for k in first if re.fullmatch(r"rnn\.weight_ih_l\d+", k))
    expr_heads = [heads[i]["decoder.weight"].shape[0] for i, task in head_tasks.items() if task == "EXPR"]
    config = config_cls(tasks=tuple(head_tasks.values()), temporal_model=kind, hidden_size=hidden, num_layers=num_layers,
                        num_expr_classes=expr_heads[0] if expr_heads else len(EXPR_NAMES))
    return config, head_tasks


def _remap_heads(state_dict: dict[str, torch.Tensor], head_tasks: dict[int, str], tasks: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Renumber `tmodels.{i}` from the checkpoint's task order to the model's canonical order."""
    new_index = {i: tasks.index(task) for i, task in head_tasks.items()}
    out = {}
    for key, value in state_dict.items():
        m = _TMODEL_KEY.match(key)
        out[f"tmodels.{new_index[int(m.group(1))]}.{m.group(2)}" if m else key] = value
    return out


def model_from_checkpoint(ckpt: dict[str, Any], source: str = "checkpoint", **config_overrides) -> EMENet:
    """Build the model a checkpoint dict describes and load its weights strictly.

    Ours name their class in `arch` (absent in early ones: EMENet); originals are recognised
    by their keys. The result is an `EMENet` or an `EMENetVA` (a subclass).
    """
    state_dict = ckpt["state_dict"]
    if "config" in ckpt:
        arch = ckpt.get("arch", "EMENet")
        if arch not in ARCHITECTURES:
            raise EMENetInputError(f"{source}: unknown model class {arch!r}; known ones are {list(ARCHITECTURES)}")
        config = ARCHITECTURES[arch][1].from_dict({**ckpt["config"], **config_overrides})
        head_tasks = {i: t for i, t in enumerate(config.tasks)}
    else:
        try:
            config, head_tasks = infer_config(state_dict, config_overrides.get("temporal_model"))
        except EMENetInputError as exc:  # name the file the state dict came from
            raise EMENetInputError(f"{source}: {exc}") from None
        if config_overrides:
            config = type(config).from_dict({**config.to_dict(), **config_overrides})
    model = _CONFIG_TO_MODEL[type(config)](config)
    load_state_dict_strict(model, _remap_heads(state_dict, head_tasks, config.tasks), source)
    return model


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", **config_overrides) -> EMENet:
    """Load an original `net_epoch_<E>_<name>.pth` or an EMENet checkpoint, in eval mode.

    EMENet-V and EMENet-VA (`video_backbone.*` + `audio_backbone.*` keys) checkpoints alike;
    both take `model(frames, audio=None, hidden=None)`, and `model.uses_audio` says whether the
    audio windows are needed.

    Keyword arguments override config fields, e.g. `sequence_layout="legacy"` to reproduce
    the original's batched numbers.

    >>> model = load_checkpoint("checkpoints/teacher_exp_0/net_epoch_4_teacher_exp_0.pth")  # doctest: +SKIP
    >>> logits, hidden = model(frames)  # doctest: +SKIP
    """
    model = model_from_checkpoint(read_checkpoint_file(path), str(path), **config_overrides)
    return model.to(device).eval()


def save_checkpoint(path: str | os.PathLike, model: EMENet, epoch: int, extra: dict[str, Any] | None = None,
                    overwrite: bool = False) -> Path:
    """Write `{'state_dict', 'epoch', 'config', ...}` atomically; the key layout is the original's."""
    payload = {"state_dict": model.state_dict(), "epoch": epoch, "config": model.config.to_dict(),
               "arch": type(model).__name__, "format_version": CHECKPOINT_FORMAT, **(extra or {})}
    return save_torch(path, payload, overwrite)
