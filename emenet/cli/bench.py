"""`emenet bench`: measure inference, video and training speed against a plain baseline (emenet.bench).

    emenet bench --quick --out_dir runs/bench
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from emenet.cli.options import add_overwrite_argument
from emenet.errors import EMENetInputError

if TYPE_CHECKING:  # the suite is imported only when the command runs
    from emenet.bench.suite import SuiteConfig


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    from emenet.bench.suite import DEFAULT_VIDEO, SECTIONS, SuiteConfig
    d = SuiteConfig()
    p.add_argument("--quick", action="store_true", help="tiny settings: proves the suite runs (numbers mean little)")
    p.add_argument("--out_dir", default=str(d.out_dir), help=f"folder for <machine>.md/.json (default {d.out_dir})")
    p.add_argument("--name", default=None, help="results file stem (default: the machine, e.g. amd-epyc-2cpu)")
    p.add_argument("--members", type=int, default=None, help=f"ensemble size (default {d.members})")
    p.add_argument("--batch", type=int, default=None, help=f"frames per batched call (default {d.batch})")
    p.add_argument("--repeat", type=int, default=None, help=f"timed calls per measurement (default {d.repeat})")
    p.add_argument("--video", default=None, help=f"video for the pipeline measurements (default {DEFAULT_VIDEO})")
    p.add_argument("--data_root", default=None, help="training data for the loader (default: a small synthetic set)")
    p.add_argument("--skip", nargs="+", default=[], choices=SECTIONS, help="sections to leave out")
    p.add_argument("--in_process", action="store_true", help="measure in this process (faster start, less isolation)")
    add_overwrite_argument(p, "replace existing results")
    p.set_defaults(func=cmd_bench)


def config_from_args(args: argparse.Namespace) -> "SuiteConfig":
    """The SuiteConfig the flags describe (--quick: the tiny settings); one line for a bad count."""
    from emenet.bench.suite import SuiteConfig
    overrides: dict = {"out_dir": Path(args.out_dir), "name": args.name, "skip": tuple(args.skip),
                       "overwrite": args.overwrite}
    for key in ("members", "batch", "repeat"):
        if getattr(args, key) is not None:
            if getattr(args, key) < 1:
                raise EMENetInputError(f"--{key} must be at least 1, got {getattr(args, key)}")
            overrides[key] = getattr(args, key)
    if args.video is not None:
        overrides["video"] = Path(args.video)
    if args.data_root is not None:
        overrides["data_root"] = Path(args.data_root)
    if args.in_process:
        overrides["in_process"] = True
    return SuiteConfig.quick(**overrides) if args.quick else SuiteConfig(**overrides)


def cmd_bench(args: argparse.Namespace) -> None:
    from emenet.bench.suite import run_suite
    md, js = run_suite(config_from_args(args))
    print(md.read_text())
    print(f"written: {md}, {js}")
