"""`emenet validate-ensemble` (both trees' validate_ensemble.py): parse, then call
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

from emenet.cli.options import add_ensemble_arguments, add_run_arguments, device_from_args


def add_validate_ensemble_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of both trees' validate_ensemble.py (Train_Multimodal's sets --window_size and --sr)."""
    add_ensemble_arguments(parser)
    parser.add_argument("--mc_dropout_passes", type=int, default=10, help="MC-dropout passes of member 0 (0: skip)")
    parser.add_argument("--calibration_split_fraction", type=float, default=0.5,
                        help="share of the videos temperatures are fitted on (default %(default)s)")
    parser.add_argument("--au_temperature_per_unit", action="store_true", help="one temperature per AU, not one shared")
    parser.add_argument("--n_bins", type=int, default=10, help="ECE bins (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the video halves and the dropout masks")
    parser.add_argument("--chunk", type=int, default=64, help="frames per forward pass (default %(default)s)")
    parser.add_argument("--max_videos", type=int, default=None, help="only the first N videos (quick checks)")
    parser.add_argument("--window_size", type=float, default=None,
                        help="seconds of audio per frame the audio-visual members were trained with (default %(default)s)")
    parser.add_argument("--sr", type=int, default=None, help="their audio sample rate (default %(default)s)")
    parser.add_argument("--audio_dir", default=None, help="decoded audio tracks (extract_audio_files.py; default "
                        "<cache_dir>/audio, else <data_root>/.emenet_cache/audio)")
    add_run_arguments(parser)
    parser.set_defaults(func=cmd_validate_ensemble)


def cmd_validate_ensemble(args: argparse.Namespace) -> None:
    """Validate the ensemble `args` name; EMENetInputError for bad input."""
    from emenet.distill.members import members_from_names
    from emenet.evaluation.validate_ensemble import validate_ensemble
    members = members_from_names(args.names, args.load_epochs, args.checkpoints_dir)
    result = validate_ensemble(
        members, args.data_root, args.out, split=args.split, mc_dropout_passes=args.mc_dropout_passes,
        calibration_split_fraction=args.calibration_split_fraction, seed=args.seed, n_bins=args.n_bins,
        au_temperature_per_unit=args.au_temperature_per_unit, chunk=args.chunk, device=device_from_args(args),
        num_workers=args.num_workers, cache_dir=args.cache_dir, max_videos=args.max_videos,
        overwrite=args.overwrite, progress=not args.no_progress, audio_dir=args.audio_dir,
        window_size=args.window_size, sample_rate=args.sr)
    print(f"ensemble validation of {len(members)} members written to {args.out} ({len(result.table)} methods)")

