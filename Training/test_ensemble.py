"""Write the challenge submission of an ensemble: one file per test name and task, for each
member and for the merged ensemble, each beside a CSV with probabilities and uncertainty.

Layout under --save_dir (see emenet.inference.submission):
    <member>/<AU|EXPR|VA>/<name>.txt, merged/<AU|EXPR|VA>/<name>.txt    challenge format
    <member>_with_uncertainty/..., merged_with_uncertainty/.../<name>.csv  + probabilities, uncertainty
Test names already done are skipped on a rerun unless --overwrite.

Example:
    python Training/create_test_set_file.py --data_dir data/affwild2 --out test_set.parquet
    python Training/test_ensemble.py --names teacher_0 teacher_1 --load_epochs 4 6 --test_set_file test_set.parquet
    python Training/test_ensemble.py --checkpoint a.pth b.pth --save_dir submission --cuda \\
        --ground_truth_dir data/synth/synthetic_ground_truth
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from emenet.errors import EMENetInputError


def build_parser() -> argparse.ArgumentParser:
    from emenet.inference.cli_predict import add_checkpoint_arguments
    parser = argparse.ArgumentParser(prog="test_ensemble.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_checkpoint_arguments(parser)
    parser.add_argument("--test_set_file", default="test_set.parquet",
                        help="written by Training/create_test_set_file.py (default %(default)s)")
    parser.add_argument("--save_dir", default="submission", help="output folder (default %(default)s)")
    parser.add_argument("--overwrite", action="store_true", help="redo test names that are already done")
    parser.add_argument("--chunk_size", type=int, default=256, help="crops read per step (default %(default)s)")
    parser.add_argument("--num_workers", type=int, default=2, help="threads reading crops (default %(default)s)")
    parser.add_argument("--ground_truth_dir", default=None,
                        help="score the merged files against ground truth in this folder (<AU_Set|EXPR_Set|VA_Set>/)")
    parser.add_argument("--no_progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from emenet.inference.submission import members_from_names, score_submission, write_submission
    try:
        members = members_from_names(args.names, args.load_epochs, args.checkpoints_dir, args.checkpoint)
        result = write_submission(members, args.test_set_file, args.save_dir, overwrite=args.overwrite,
                                  device="cuda" if args.cuda else args.device, batch_size=args.batch_size,
                                  chunk_size=args.chunk_size, num_workers=args.num_workers,
                                  progress=not args.no_progress)
        scores = None
        if args.ground_truth_dir:
            scores = score_submission(result.merged_dir, args.ground_truth_dir, args.test_set_file)
    except EMENetInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{result.save_dir}: {len(result.done)} test names predicted, {len(result.skipped)} already done "
          f"({len(members)} member(s): {', '.join(result.members)})")
    if scores is not None:
        from emenet.metrics import flatten_scores
        print(json.dumps({k: round(v, 4) for k, v in flatten_scores(scores).items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
