"""`emenet models` (the registered names) and `emenet model-stats` (Training/model_stats.py):
parameters and multiply-accumulates per frame of a model, beside the paper's figures.

MACs come from torch's FLOP counter (MACs = FLOPs / 2; convolutions and matrix products only);
see `emenet.profiling` for what is counted and why the paper's 228M differs.

    emenet model-stats --model emenet_v_aux --seq_len 30 --json runs/emenet_v_aux_stats.json
"""
from __future__ import annotations

import argparse

from emenet.cli.options import add_overwrite_argument
from emenet.errors import EMENetInputError


def add_models_arguments(p: argparse.ArgumentParser) -> None:
    p.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> None:
    from emenet.models import list_models
    print("\n".join(list_models()))


def add_model_stats_arguments(p: argparse.ArgumentParser) -> None:
    from emenet.models import list_models
    from emenet.profiling import DEFAULT_SEQ_LEN
    p.add_argument("--model", default="emenet_v", choices=list_models(), help="registered model name")
    p.add_argument("--seq_len", type=int, default=DEFAULT_SEQ_LEN,
                   help="frames per measured clip; MACs are divided by it (default %(default)s)")
    p.add_argument("--json", metavar="OUT", help="also write the report to this JSON file")
    add_overwrite_argument(p, "replace an existing --json file")
    p.set_defaults(func=cmd_model_stats)


def cmd_model_stats(args: argparse.Namespace) -> None:
    from emenet.io_utils import check_output_file, write_json
    from emenet.profiling import format_report, model_report
    if args.seq_len < 1:
        raise EMENetInputError(f"--seq_len must be at least 1, got {args.seq_len}")
    if args.json:
        check_output_file(args.json, args.overwrite)
    report = model_report(args.model, seq_len=args.seq_len)
    print(format_report(report))
    if args.json:
        write_json(args.json, report, args.overwrite)
        print(f"report written to {args.json}")
