"""One home for the command line: `emenet <command>` (emenet.cli.app) and the thin scripts of
Training/, Train_Multimodal/ and Demo/ (`Script`), sharing the option groups of emenet.cli.options
and the one-line error path of emenet.cli.runner."""
from emenet.cli.app import COMMANDS, Script, build_parser, main

__all__ = ["COMMANDS", "Script", "build_parser", "main"]
