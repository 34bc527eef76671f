"""`emenet conformal` (and Training/calibrate_conformal.py): parse, then call
`emenet.conformal.fit.fit_conformal`, and print the measured coverage.

Example:
    emenet conformal --data_root data/affwild2 --names t0 t1 t2 --load_epochs 4 6 5 --coverage 0.8 0.9 0.95
"""
from __future__ import annotations

import argparse

from emenet.cli.options import add_ensemble_arguments, add_run_arguments, device_from_args


def add_conformal_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the calibration command."""
    from emenet.conformal.regions import AbstainRule, SetMethod
    rule, method = AbstainRule(), SetMethod()
    add_ensemble_arguments(parser, split_help="held-out videos to calibrate on (default %(default)s)",
                           out_help="save the calibration here instead", out_required=False,
                           checkpoints_help="where the members are; the calibration is saved here as "
                                            "conformal_<key>.json")
    parser.add_argument("--coverage", nargs="+", type=float, default=[0.9],
                        help="target coverage(s), each strictly between 0 and 1 (default %(default)s)")
    parser.add_argument("--calibration_split_fraction", type=float, default=0.5,
                        help="share of the videos thresholds are fitted on; the rest measure them (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the split of the videos")
    parser.add_argument("--expr_method", choices=["aps", "raps"], default=method.expr_method,
                        help="expression sets: adaptive (APS) or regularised adaptive (RAPS) (default %(default)s)")
    parser.add_argument("--raps_lambda", type=float, default=method.raps_lambda, help="RAPS penalty per extra class")
    parser.add_argument("--raps_k", type=int, default=method.raps_k, help="RAPS: classes free of the penalty")
    parser.add_argument("--abstain_expr_size", type=int, default=rule.expr_max_set_size,
                        help="abstain_EXPR when the set has more expressions (default %(default)s)")
    parser.add_argument("--abstain_au_undecided", type=int, default=rule.au_max_undecided,
                        help="abstain_AU when more AUs are undecided, {0, 1} (default %(default)s)")
    parser.add_argument("--abstain_va_width", type=float, default=rule.va_max_width,
                        help="abstain_VA when valence's or arousal's interval is wider (default %(default)s)")
    parser.add_argument("--chunk", type=int, default=64, help="frames per forward pass (default %(default)s)")
    parser.add_argument("--max_videos", type=int, default=None, help="only the first N videos (quick checks)")
    parser.add_argument("--audio_dir", default=None, help="decoded audio tracks for EMENet-VA members")
    add_run_arguments(parser, overwrite_help="replace an existing calibration file")
    parser.set_defaults(func=cmd_conformal)


def cmd_conformal(args: argparse.Namespace) -> None:
    """Fit and save; EMENetInputError for bad input."""
    from emenet.conformal.fit import fit_conformal, measured_table
    from emenet.conformal.regions import AbstainRule, SetMethod
    from emenet.distill.members import members_from_names
    from emenet.errors import EMENetInputError
    from emenet.reporting import markdown_table
    import pandas as pd
    try:
        method = SetMethod(args.expr_method, args.raps_lambda, args.raps_k)
    except ValueError as exc:
        raise EMENetInputError(str(exc)) from None
    for c in args.coverage:
        if not 0.0 < c < 1.0:
            raise EMENetInputError(f"--coverage must be strictly between 0 and 1, got {c}")
    rule = AbstainRule(args.abstain_expr_size, args.abstain_au_undecided, args.abstain_va_width)
    members = members_from_names(args.names, args.load_epochs, args.checkpoints_dir)
    cal, path = fit_conformal(members, args.data_root, args.out, checkpoints_dir=args.checkpoints_dir,
                              coverages=args.coverage, split=args.split,
                              calibration_fraction=args.calibration_split_fraction, seed=args.seed, method=method,
                              abstain=rule, chunk=args.chunk, device=device_from_args(args),
                              num_workers=args.num_workers, cache_dir=args.cache_dir, audio_dir=args.audio_dir, max_videos=args.max_videos,
                              overwrite=args.overwrite, progress=not args.no_progress)
    print(f"conformal calibration of {len(members)} member(s) written to {path}")
    print(f"measured on {len(cal.split['evaluation_videos'])} held-out video(s):")
    print(markdown_table(pd.DataFrame(measured_table(cal)), digits=3))

