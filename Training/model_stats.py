"""Parameters and multiply-accumulates per frame of an EMENet model, beside the paper's figures.

MACs come from torch's FLOP counter (MACs = FLOPs / 2; convolutions and matrix products
only); see `emenet.profiling` for what is counted and why the paper's 228M differs.

Example:
    python Training/model_stats.py --model emenet_v
    python Training/model_stats.py --model emenet_v_aux --seq_len 30 --json runs/emenet_v_aux_stats.json
"""
from __future__ import annotations

import argparse

from emenet.io_utils import write_json
from emenet.models import list_models
from emenet.profiling import DEFAULT_SEQ_LEN, format_report, model_report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model_stats.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="emenet_v", choices=list_models(), help="registered model name")
    parser.add_argument("--seq_len", type=int, default=DEFAULT_SEQ_LEN,
                        help="frames per measured clip; MACs are divided by it (default %(default)s)")
    parser.add_argument("--json", metavar="OUT", help="also write the report to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.seq_len < 1:
        build_parser().error(f"--seq_len must be at least 1, got {args.seq_len}")
    report = model_report(args.model, seq_len=args.seq_len)
    print(format_report(report))
    if args.json:
        write_json(args.json, report)
        print(f"report written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
