"""Index the challenge test set: per test name its tasks, video, frame rate, every video frame
and which frames have a face crop, so a submission can give a row for every frame.

Writes Parquet (or CSV when --out ends in .csv or .txt); see emenet.challenge.test_set for the columns.

Example (`emenet test-set` takes the same options):
    python Training/create_test_set_file.py --data_dir data/affwild2/cropped_aligned \\
        --video_dir data/affwild2/videos --out test_set.parquet
    python Training/create_test_set_file.py --data_dir data/synth --out test_set.csv --count_method packets
"""
from __future__ import annotations

import argparse

from emenet.cli.options import add_crops_dir_argument, add_output_arguments, non_negative_int


def add_test_set_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of Training/create_test_set_file.py."""
    parser.add_argument("--data_dir", required=True,
                        help="the cropped_aligned folder, or the Aff-wild2 root holding it")
    parser.add_argument("--video_dir", default=None, help="folder of the raw videos, searched recursively "
                        "(default: <data root>/videos)")
    parser.add_argument("--au_txt", default=None,
                        help="AU test list (default: <data root>/abaw2_test_set/test_set_AU_Challenge.txt)")
    parser.add_argument("--expr_txt", default=None,
                        help="EXPR test list (default: <data root>/abaw2_test_set/test_set_Expr_Challenge.txt)")
    parser.add_argument("--va_txt", default=None,
                        help="VA test list (default: <data root>/abaw2_test_set/test_set_VA_Challenge.txt)")
    add_crops_dir_argument(parser, default=(), help="more crop folders searched after --data_dir's (e.g. a later "
                           "release's cropped_aligned_new_50_vids)")
    parser.add_argument("--count_method", choices=("decode", "packets"), default="decode",
                        help="count frames by decoding them (exact, default) or by counting packets (fast)")
    parser.add_argument("--num_workers", type=non_negative_int, default=None,
                        help="videos counted in parallel (default: up to 4)")
    add_output_arguments(parser, required=True, help="output file, .parquet or .csv",
                         overwrite_help="replace an existing --out")
    parser.add_argument("--no_progress", action="store_true")
    parser.set_defaults(func=cmd_test_set)


def cmd_test_set(args: argparse.Namespace) -> None:
    """Build and write the index `args` describe; EMENetInputError for bad input."""
    from emenet.challenge.test_set import build_test_set, default_test_lists, resolve_data_dirs, write_test_set
    from emenet.io_utils import check_output_file
    data_root, _ = resolve_data_dirs(args.data_dir)
    check_output_file(args.out, args.overwrite)  # before the frames are counted, which can take minutes
    given = {"AU": args.au_txt, "EXPR": args.expr_txt, "VA": args.va_txt}
    lists = {**default_test_lists(data_root), **{task: p for task, p in given.items() if p is not None}}
    test_set = build_test_set(args.data_dir, args.video_dir, lists, count_method=args.count_method,
                              num_workers=args.num_workers, progress=not args.no_progress,
                              extra_crops_dirs=args.crops_dir)
    path = write_test_set(test_set, args.out, overwrite=args.overwrite)
    missing = sum(v.num_frames - v.num_crops for v in test_set.values())
    print(f"{path}: {len(test_set)} test names, {test_set.num_frames} frames ({missing} without a crop)")

