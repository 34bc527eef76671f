"""How every command-line entry point runs its work: user mistakes become one line, not a traceback.

A failure the user caused or met (`EMENetInputError`, an `OSError` such as a full disk or a
read-only folder, an undecodable video, running out of memory; also when raised inside a
DataLoader worker: see `emenet.failures`) prints `error: <what and where>` on stderr and exits
2. Anything else is a bug and keeps its traceback. `--debug` (or `EMENET_DEBUG=1` in the
environment) prints the traceback of the one-line failures too. Ctrl-C exits 130 with a hint
that the same command resumes (every long command skips finished work).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable

from emenet.failures import failure_message

DEBUG_ENV = "EMENET_DEBUG"


def add_debug_argument(parser: argparse.ArgumentParser) -> None:
    """`--debug`: show the traceback behind a one-line error."""
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=f"show the full traceback of a failure (or set {DEBUG_ENV}=1)")


def debug_requested(args: argparse.Namespace | None = None) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0", "false")


def _close_progress_bars() -> None:
    """End the progress bars a failure interrupted, so the error starts a line of its own."""
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def run_command(func: Callable[[argparse.Namespace], object], args: argparse.Namespace) -> int:
    """Run `func(args)` and return the process exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        func(args)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume (training: with --load_epoch -1)", file=sys.stderr)
        return 130
    except Exception as exc:
        message = failure_message(exc)
        if message is None:
            raise  # a bug: the traceback is what a report needs
        _close_progress_bars()
        if debug_requested(args):
            traceback.print_exc(file=sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0

