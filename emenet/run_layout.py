"""Where a run keeps its files: the original's checkpoint names, in one place.

A run folder is `<checkpoints_dir>/<name>/` holding, per epoch E, the network
`net_epoch_<E>_<name>.pth` and the optimizer/trainer state `opt_epoch_<E>_OPT.pth`
(the released checkpoints use exactly these names, so users' downloads load unchanged).
An epoch is complete when both files exist (the net is written last).

    >>> net_file(Path("checkpoints/t0"), "t0", 4).as_posix()
    'checkpoints/t0/net_epoch_4_t0.pth'
    >>> parse_net_file("net_epoch_12_teacher_exp_0.pth")
    (12, 'teacher_exp_0')
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Sequence

from emenet.errors import EMENetInputError

_NET_FILE = re.compile(r"^net_epoch_(\d+)_(.+)\.pth$")


def net_file_name(name: str, epoch: int) -> str:
    """`net_epoch_<E>_<name>.pth`, the original's network file name."""
    return f"net_epoch_{epoch}_{name}.pth"


def optimizer_file_name(epoch: int) -> str:
    """`opt_epoch_<E>_OPT.pth`, the original's optimizer file name (the same for every run name)."""
    return f"opt_epoch_{epoch}_OPT.pth"


def parse_net_file(file_name: str) -> tuple[int, str] | None:
    """(epoch, name) of a `net_epoch_<E>_<name>.pth` file name; None for any other name."""
    m = _NET_FILE.match(file_name)
    return (int(m.group(1)), m.group(2)) if m else None


def run_dir(checkpoints_dir: str | os.PathLike, name: str) -> Path:
    """`<checkpoints_dir>/<name>`: one run's folder."""
    return Path(checkpoints_dir) / name


def net_file(run_dir_: str | os.PathLike, name: str, epoch: int) -> Path:
    """The network file of `epoch` inside a run folder."""
    return Path(run_dir_) / net_file_name(name, epoch)


def optimizer_file(run_dir_: str | os.PathLike, epoch: int) -> Path:
    """The optimizer/trainer state of `epoch` inside a run folder."""
    return Path(run_dir_) / optimizer_file_name(epoch)


def checkpoint_path(checkpoints_dir: str | os.PathLike, name: str, epoch: int) -> Path:
    """`<checkpoints_dir>/<name>/net_epoch_<E>_<name>.pth`: a model by name and epoch."""
    return net_file(run_dir(checkpoints_dir, name), name, epoch)


def completed_epochs(run_dir_: str | os.PathLike, name: str) -> list[int]:
    """Epochs of `name` with both the network and the optimizer/trainer state written, ascending."""
    run_dir_ = Path(run_dir_)
    if not run_dir_.is_dir():
        return []
    epochs = []
    for p in run_dir_.iterdir():
        parsed = parse_net_file(p.name)
        if parsed and parsed[1] == name and optimizer_file(run_dir_, parsed[0]).is_file():
            epochs.append(parsed[0])
    return sorted(epochs)


def latest_epoch(run_dir_: str | os.PathLike, name: str) -> int | None:
    """The last complete epoch of a run; None when it has none."""
    done = completed_epochs(run_dir_, name)
    return done[-1] if done else None


def history_file(run_dir_: str | os.PathLike) -> Path:
    """`history.json`: every epoch's validation metrics and the best epoch (written by training)."""
    return Path(run_dir_) / "history.json"


def best_epoch(run_dir_: str | os.PathLike) -> int:
    """The best epoch recorded in a run's `history.json` (by the run's selection metric)."""
    path = history_file(run_dir_)
    try:
        history = json.loads(path.read_text())
        return int(history["best_epoch"])
    except FileNotFoundError:
        raise EMENetInputError(f"{path}: not found; is {Path(run_dir_)} a training run?") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EMENetInputError(f"{path}: unreadable run history ({type(e).__name__}: {e})") from None


def pair_names_and_epochs(names: Sequence[str], load_epochs: Sequence[int]) -> list[tuple[str, int]]:
    """`--names A B C --load_epochs 4 8 4` as (name, epoch) pairs; one epoch applies to every name."""
    names, epochs = list(names), [int(e) for e in load_epochs]
    if not names:
        raise EMENetInputError("no model name given (--names)")
    if len(epochs) == 1:
        epochs = epochs * len(names)
    if len(epochs) != len(names):
        raise EMENetInputError(f"{len(names)} names but {len(epochs)} epochs (--names has {len(names)} entries but "
                               f"--load_epochs has {len(epochs)}); give one epoch, or one per name")
    return list(zip(names, epochs))


def named_checkpoint_paths(names: Sequence[str], load_epochs: Sequence[int],
                           checkpoints_dir: str | os.PathLike = "./checkpoints") -> list[Path]:
    """`<checkpoints_dir>/<name>/net_epoch_<E>_<name>.pth` for each (name, epoch) pair."""
    return [checkpoint_path(checkpoints_dir, n, e) for n, e in pair_names_and_epochs(names, load_epochs)]
