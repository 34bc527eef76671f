"""Out-of-distribution detection by the ensemble's uncertainty: AUROC of epistemic (and total)
uncertainty separating generated OOD clips (non-face images, heavily corrupted faces) from
in-distribution validation clips.

Writes ood_auroc.csv, ood_auroc.md, ood_clips.csv, ood_histogram.png and ood_summary.json under
--out; see emenet.evaluation.ood for the OOD kinds. `emenet ood` and Training/validate_ensemble_OOD.py.

Example:
    python Training/validate_ensemble_OOD.py --data_root data/affwild2 --names t0 t1 t2 --load_epochs 4 --out runs/ood
    python Training/validate_ensemble_OOD.py --data_root data/synth --names t0 t1 --load_epochs 4 --out runs/ood \\
        --kinds noise face_blur --clips_per_kind 64
"""
from __future__ import annotations

import argparse

from emenet.cli.options import add_ensemble_arguments, add_run_arguments, device_from_args


def add_ood_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of Training/validate_ensemble_OOD.py."""
    from emenet.evaluation.ood import OOD_KINDS
    add_ensemble_arguments(parser, names_help="ensemble member run names (at least 2)",
                         split_help="where the in-distribution clips come from")
    parser.add_argument("--kinds", nargs="+", default=list(OOD_KINDS), choices=OOD_KINDS, metavar="KIND",
                        help=f"OOD kinds (default: all of {', '.join(OOD_KINDS)})")
    parser.add_argument("--clip_len", type=int, default=16, help="frames per clip, ID and OOD (default %(default)s)")
    parser.add_argument("--clips_per_video", type=int, default=8, help="ID clips per video (default %(default)s)")
    parser.add_argument("--clips_per_kind", type=int, default=32, help="OOD clips per kind (default %(default)s)")
    parser.add_argument("--batch_size", type=int, default=8, help="clips per forward pass (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max_videos", type=int, default=None, help="only the first N videos (quick checks)")
    add_run_arguments(parser, num_workers=False)
    parser.set_defaults(func=cmd_ood)


def cmd_ood(args: argparse.Namespace) -> None:
    """Evaluate OOD detection for the ensemble `args` name; EMENetInputError for bad input."""
    from emenet.distill.members import members_from_names
    from emenet.evaluation.ood import evaluate_ood
    members = members_from_names(args.names, args.load_epochs, args.checkpoints_dir)
    result = evaluate_ood(members, args.data_root, args.out, split=args.split, kinds=args.kinds,
                          clip_len=args.clip_len, clips_per_video=args.clips_per_video,
                          clips_per_kind=args.clips_per_kind, batch_size=args.batch_size, seed=args.seed,
                          device=device_from_args(args), cache_dir=args.cache_dir, max_videos=args.max_videos,
                          overwrite=args.overwrite, progress=not args.no_progress)
    row = result.auroc.set_index("ood_set").loc["all_ood"]
    print(f"OOD AUROC (all kinds) of epistemic uncertainty, mean over tasks: {row['mean_epistemic_auroc']:.3f}; "
          f"written to {args.out}")

