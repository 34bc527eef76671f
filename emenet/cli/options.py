"""Argument groups several subcommands share, declared once so that a flag reads and behaves the same
everywhere: which checkpoints (names and epochs, or files), which device and backend, where the
output goes and `--overwrite`, and where the Aff-wild2 data lies.

    >>> import argparse
    >>> p = argparse.ArgumentParser()
    >>> add_member_arguments(p); add_device_arguments(p)
    >>> args = p.parse_args(["--names", "t0", "t1", "--load_epochs", "4", "--use_cuda"])
    >>> args.names, args.load_epochs, args.checkpoints_dir, device_from_args(args)
    (['t0', 't1'], [4], './checkpoints', 'cuda')
"""
from __future__ import annotations

import argparse
from pathlib import Path

from emenet.errors import EMENetInputError

DEFAULT_CHECKPOINTS_DIR = "./checkpoints"
BACKENDS = ("auto", "eager", "fused", "compile", "onnx", "int8")


def non_negative_int(text: str) -> int:
    """An argparse type for counts such as --num_workers, where torch's loader would end a
    negative one in a traceback deep inside the run."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def add_checkpoints_dir_argument(p: argparse.ArgumentParser, help: str | None = None) -> None:
    """`--checkpoints_dir`: the folder of <name>/net_epoch_<E>_<name>.pth."""
    p.add_argument("--checkpoints_dir", default=DEFAULT_CHECKPOINTS_DIR,
                   help=help or "folder of <name>/net_epoch_<E>_<name>.pth (default %(default)s)")


def add_member_arguments(p: argparse.ArgumentParser, *, required: bool = False, files: bool = False,
                         names_help: str = "model names under --checkpoints_dir (several: an ensemble)",
                         checkpoints_help: str | None = None) -> None:
    """`--names`, `--load_epochs`, `--checkpoints_dir` (the original's run layout) and, with `files`,
    `--checkpoint PATH...`; `required`: names and epochs must be given (ensemble commands)."""
    empty = {"required": True} if required else {"default": []}
    p.add_argument("--names", nargs="+", metavar="NAME", help=names_help, **empty)
    p.add_argument("--load_epochs", nargs="+", type=int, metavar="E",
                   help="epoch of each name (one epoch applies to every name)", **empty)
    add_checkpoints_dir_argument(p, checkpoints_help)
    if files:
        p.add_argument("--checkpoint", nargs="+", default=[], metavar="PATH",
                       help="checkpoint files, instead of or besides --names")


def checkpoint_paths_from_args(args: argparse.Namespace) -> list[Path]:
    """`--names/--load_epochs` under `--checkpoints_dir`, then any `--checkpoint PATH`; one line if none."""
    from emenet.run_layout import named_checkpoint_paths
    paths = [Path(p) for p in getattr(args, "checkpoint", [])]
    if args.names or args.load_epochs:
        if not args.names or not args.load_epochs:
            raise EMENetInputError("--names and --load_epochs go together")
        paths = named_checkpoint_paths(args.names, args.load_epochs, args.checkpoints_dir) + paths
    if not paths:
        raise EMENetInputError("no model given: pass --names NAME --load_epochs E, or --checkpoint PATH")
    return paths


def add_device_arguments(p: argparse.ArgumentParser, *, backend: bool = False) -> None:
    """`--cuda` (the original's `--use_cuda` too), `--device` and, with `backend`, `--backend`."""
    p.add_argument("--cuda", "--use_cuda", dest="cuda", action="store_true",
                   help="run on the GPU, same as --device cuda (--use_cuda: the original's spelling)")
    p.add_argument("--device", default="cpu", help="torch device (default %(default)s)")
    if backend:
        p.add_argument("--backend", default="auto", choices=BACKENDS,
                       help="inference path (emenet.fast.runners); auto: onnx on the CPU where the onnx extra is "
                            "installed, else fused")


def device_from_args(args: argparse.Namespace) -> str:
    """The torch device `--cuda` / `--device` ask for."""
    return "cuda" if getattr(args, "cuda", False) else args.device


def add_overwrite_argument(p: argparse.ArgumentParser, help: str = "replace existing outputs") -> None:
    p.add_argument("--overwrite", action="store_true", help=help)


def add_output_arguments(p: argparse.ArgumentParser, flag: str = "--out", *, help: str, required: bool = False,
                         default: str | None = None, overwrite_help: str = "replace existing outputs") -> None:
    """Where the results go (`flag`: --out, --output_dir, --save_dir ...) and `--overwrite`."""
    p.add_argument(flag, required=required, default=default, help=help)
    add_overwrite_argument(p, overwrite_help)


def add_crops_dir_argument(p: argparse.ArgumentParser, help: str | None = None,
                           default: list[str] | None = None) -> None:
    p.add_argument("--crops_dir", nargs="+", default=default,
                   help=help or "face crop folders, searched in order (default: every cropped_aligned* folder "
                                "of --data_root)")


def add_data_arguments(p: argparse.ArgumentParser, *, root: bool = True, locations: bool = True,
                       root_help: str = "Aff-wild2 root (or `emenet synth` output)") -> None:
    """`--data_root` (with `root`) and, with `locations`, `--annotations_dir` and `--crops_dir`: where a
    release keeps what --data_root does not hold."""
    if root:
        p.add_argument("--data_root", required=True, help=root_help)
    if locations:
        p.add_argument("--annotations_dir", default=None, help="the annotation folder of any Aff-wild2 release "
                       "(default: found under --data_root)")
        add_crops_dir_argument(p)


def add_ensemble_arguments(p: argparse.ArgumentParser, *, names_help: str = "ensemble member run names",
                           split_help: str | None = None, out_help: str = "output folder", out_required: bool = True,
                           checkpoints_help: str | None = None) -> None:
    """The data, members and output folder that ensemble validation, OOD detection and conformal calibration share."""
    add_data_arguments(p, locations=False)
    add_member_arguments(p, required=True, names_help=names_help, checkpoints_help=checkpoints_help)
    p.add_argument("--out", required=out_required, default=None, help=out_help)
    p.add_argument("--split", default="Validation_Set", help=split_help)


def add_run_arguments(p: argparse.ArgumentParser, overwrite_help: str = "replace existing output files",
                      num_workers: bool = True) -> None:
    """Device, loader workers, cache, overwrite and progress: the run options of the ensemble commands."""
    add_device_arguments(p)
    if num_workers:
        p.add_argument("--num_workers", type=non_negative_int, default=0)
    p.add_argument("--cache_dir", default=None)
    add_overwrite_argument(p, overwrite_help)
    p.add_argument("--no_progress", action="store_true")
