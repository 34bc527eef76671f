"""The `emenet` console command: subcommands that parse arguments and call the package."""
from __future__ import annotations

import argparse
import sys

from emenet.errors import EMENetInputError


def _cmd_models(args: argparse.Namespace) -> None:
    from emenet.models import list_models
    print("\n".join(list_models()))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emenet", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("models", help="list the registered model names")
    p.set_defaults(func=_cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except EMENetInputError as exc:
        print(f"emenet: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
