"""Command line of ensemble validation (Train_Multimodal/validate_ensemble.py): parse, then call
`emenet.evaluation.validate_ensemble.validate_ensemble`.

Writes metrics.csv, metrics.md, summary.json, reliability/<method>.png, selective.csv,
selective_curves.csv and selective/<task>.png under --out. Members may
be EMENet-V or EMENet-VA checkpoints; the latter hear each video's audio (decoded once into
--audio_dir), and --window_size / --sr must match what they were trained with.

Example:
    python Train_Multimodal/validate_ensemble.py --data_root data/affwild2 --names t0 t1 t2 --load_epochs 4 6 5 \\
        --out runs/v --window_size 0.63 --sr 16000
"""
from __future__ import annotations

import argparse


def build_parser(window_size: float | None = None, sr: int | None = None) -> argparse.ArgumentParser:
    """The options of Training/validate_ensemble.py plus the audio ones (defaults: the script's)."""
    parser = argparse.ArgumentParser(prog="validate_ensemble.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_member_arguments(parser)
    parser.add_argument("--mc_dropout_passes", type=int, default=10, help="MC-dropout passes of member 0 (0: skip)")
    parser.add_argument("--calibration_split_fraction", type=float, default=0.5,
                        help="share of the videos temperatures are fitted on (default %(default)s)")
    parser.add_argument("--au_temperature_per_unit", action="store_true", help="one temperature per AU, not one shared")
    parser.add_argument("--n_bins", type=int, default=10, help="ECE bins (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the video halves and the dropout masks")
    parser.add_argument("--chunk", type=int, default=64, help="frames per forward pass (default %(default)s)")
    parser.add_argument("--max_videos", type=int, default=None, help="only the first N videos (quick checks)")
    parser.add_argument("--window_size", type=float, default=window_size,
                        help="seconds of audio per frame the audio-visual members were trained with (default %(default)s)")
    parser.add_argument("--sr", type=int, default=sr, help="their audio sample rate (default %(default)s)")
    parser.add_argument("--audio_dir", default=None, help="decoded audio tracks (extract_audio_files.py; default "
                        "<cache_dir>/audio, else <data_root>/.emenet_cache/audio)")
    add_run_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def add_member_arguments(parser: argparse.ArgumentParser, names_help: str = "ensemble member run names",
                         split_help: str | None = None, out_help: str = "output folder", out_required: bool = True,
                         checkpoints_help: str | None = None) -> None:
    """The data, members and output options that ensemble validation, OOD detection and conformal
    calibration share."""
    parser.add_argument("--data_root", required=True, help="Aff-wild2 root (or `emenet synth` output)")
    parser.add_argument("--names", nargs="+", required=True, help=names_help)
    parser.add_argument("--load_epochs", nargs="+", type=int, required=True,
                        help="one epoch per member (or one for all)")
    parser.add_argument("--checkpoints_dir", default="./checkpoints", help=checkpoints_help)
    parser.add_argument("--out", required=out_required, default=None, help=out_help)
    parser.add_argument("--split", default="Validation_Set", help=split_help)


def add_run_arguments(parser: argparse.ArgumentParser, overwrite_help: str = "replace existing output files",
                      num_workers: bool = True) -> None:
    """Device, loader workers, cache, overwrite and progress: the run options of the ensemble commands."""
    parser.add_argument("--device", default="cpu")
    if num_workers:
        parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--cache_dir", default=None)
    parser.add_argument("--overwrite", action="store_true", help=overwrite_help)
    parser.add_argument("--no_progress", action="store_true")


def run(args: argparse.Namespace) -> None:
    """Validate the ensemble `args` name; EMENetInputError for bad input."""
    from emenet.distill.members import members_from_names
    from emenet.evaluation.validate_ensemble import validate_ensemble
    members = members_from_names(args.names, args.load_epochs, args.checkpoints_dir)
    result = validate_ensemble(
        members, args.data_root, args.out, split=args.split, mc_dropout_passes=args.mc_dropout_passes,
        calibration_split_fraction=args.calibration_split_fraction, seed=args.seed, n_bins=args.n_bins,
        au_temperature_per_unit=args.au_temperature_per_unit, chunk=args.chunk, device=args.device,
        num_workers=args.num_workers, cache_dir=args.cache_dir, max_videos=args.max_videos,
        overwrite=args.overwrite, progress=not args.no_progress, audio_dir=args.audio_dir,
        window_size=args.window_size, sample_rate=args.sr)
    print(f"ensemble validation of {len(members)} members written to {args.out} ({len(result.table)} methods)")


def main(argv: list[str] | None = None, window_size: float | None = None, sr: int | None = None) -> int:
    """Parse, run, and turn bad input into one line on stderr and exit status 2."""
    from emenet.command_runner import parse_and_run
    return parse_and_run(build_parser(window_size, sr), argv)
