"""How every command-line entry point runs its work: user mistakes become one line, not a traceback.

`EMENetInputError` (a missing file, a malformed annotation, a refused overwrite) prints
`error: <what and where>` on stderr and exits 2; Ctrl-C exits 130 with a hint that the
same command resumes (every long command skips finished work).
"""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from emenet.errors import EMENetInputError


def run_command(func: Callable[[argparse.Namespace], object], args: argparse.Namespace) -> int:
    """Run `func(args)` and return the process exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        func(args)
    except EMENetInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume (training: with --load_epoch -1)", file=sys.stderr)
        return 130
    return 0
