"""The `emenet` console command: one subcommand per entry point, and the scripts of Training/,
Train_Multimodal/ and Demo/ as the same subcommands with their tree's defaults.

    emenet quickstart --out runs/quickstart  # synthetic data -> a small teacher -> validation metrics
    emenet synth --out data/synth            # a small synthetic dataset in the Aff-wild2 layout
    emenet train --data_root data/synth      # a teacher (the options of Training/train_teacher.py)
    emenet distill --data_root data/synth --members 5 --rounds 3 [--ray auto]
    emenet predict utterance_1.mp4 --names t0 t1 --load_epochs 4 6    # video(s) -> CSV, MP4, timeline
    emenet image --checkpoint model.pth --image photo.jpg               # one photo or face crop
    emenet conformal --data_root data/synth --names t0 t1 --load_epochs 3 --coverage 0.9   # prediction sets
    emenet <command> --help                  # every command's options

Each command module (`emenet.cli.<module>`) has `add_<command>_arguments(parser)`, which fills a
parser and sets `func`; its library imports stay inside the functions, so `emenet --help` is quick.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from emenet.cli.runner import add_debug_argument, run_command

AddArguments = Callable[[argparse.ArgumentParser], None]


def _lazy(module: str, function: str) -> AddArguments:
    """`emenet.cli.<module>.<function>`, imported only when a parser needs it."""
    def add_arguments(p: argparse.ArgumentParser) -> None:
        getattr(importlib.import_module(f"emenet.cli.{module}"), function)(p)
    return add_arguments


# subcommand -> (argument builder, one-line help); the order is the one `emenet --help` shows
COMMANDS: dict[str, tuple[AddArguments, str]] = {
    "quickstart": (_lazy("training", "add_quickstart_arguments"),
                   "synthetic data -> a small teacher -> validation metrics"),
    "synth": (_lazy("data", "add_synth_arguments"), "write a small synthetic dataset in the Aff-wild2 layout"),
    "index": (_lazy("data", "add_index_arguments"),
              "index an Aff-wild2 copy of any release: its layout, counts, --vis pictures"),
    "extract-audio": (_lazy("data", "add_extract_audio_arguments"),
                      "decode every video's audio track ahead of EMENet-VA training (extract_audio_files.py)"),
    "train": (_lazy("training", "add_train_arguments"), "train a teacher (Training/train_teacher.py)"),
    "validate": (_lazy("training", "add_validate_arguments"), "score a checkpoint on the validation split"),
    "annotate": (_lazy("training", "add_annotate_arguments"),
                 "run an ensemble over every train/validation frame: soft labels (create_new_annotations.py)"),
    "train-student": (_lazy("training", "add_train_student_arguments"),
                      "train a student on an ensemble's annotation (train_student.py)"),
    "distill": (_lazy("training", "add_distill_arguments"),
                "teachers, then rounds of students (iterative self-distillation; run_student_rounds.sh)"),
    "predict": (_lazy("predict", "add_predict_arguments"),
                "predict every frame of raw videos or folders: CSV, annotated MP4, timeline PNG"),
    "image": (_lazy("predict", "add_image_arguments"),
              "predict one photo or face crop: PNG, PDF, JSON (Training/inference_one_image.py)"),
    "demo": (_lazy("demo", "add_demo_arguments"), "live webcam or video demo (Demo/Demo_Visual_Model.py)"),
    "test-set": (_lazy("test_set", "add_test_set_arguments"),
                 "index the challenge test set (Training/create_test_set_file.py)"),
    "test-ensemble": (_lazy("test_ensemble", "add_test_ensemble_arguments"),
                      "write an ensemble's challenge submission (test_ensemble.py)"),
    "validate-ensemble": (_lazy("validate_ensemble", "add_validate_ensemble_arguments"),
                          "metrics, calibration and uncertainty of an ensemble (validate_ensemble.py)"),
    "ood": (_lazy("ood", "add_ood_arguments"),
            "out-of-distribution detection by ensemble uncertainty (Training/validate_ensemble_OOD.py)"),
    "conformal": (_lazy("conformal", "add_conformal_arguments"),
                  "fit conformal prediction sets and intervals for an ensemble (Training/calibrate_conformal.py)"),
    "models": (_lazy("models", "add_models_arguments"), "list the registered model names"),
    "model-stats": (_lazy("models", "add_model_stats_arguments"),
                    "parameters and MACs per frame of a model (Training/model_stats.py)"),
    "bench": (_lazy("bench", "add_bench_arguments"),
              "measure inference, video and training speed against a plain baseline"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emenet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_debug_argument(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add_arguments, help_text) in COMMANDS.items():
        add_arguments(command := sub.add_parser(name, help=help_text, description=help_text))
        add_debug_argument(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args.func, args)


@dataclass(frozen=True)
class Script:
    """A script of Training/, Train_Multimodal/ or Demo/: one subcommand under the script's name, with its
    tree's defaults. `defaults` replace option defaults (e.g. Train_Multimodal's --window_size 0.63);
    `config_defaults` are training options under YAML and flags (e.g. modality audiovisual).

        >>> Script("model-stats", "model_stats.py").build_parser().parse_args(["--seq_len", "4"]).seq_len
        4
    """

    command: str
    prog: str
    description: str | None = None
    defaults: dict = field(default_factory=dict)
    config_defaults: dict = field(default_factory=dict)

    def build_parser(self) -> argparse.ArgumentParser:
        add_arguments, help_text = COMMANDS[self.command]
        parser = argparse.ArgumentParser(prog=self.prog, description=self.description or help_text,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(parser)
        add_debug_argument(parser)
        _set_defaults(parser, self.defaults)
        parser.set_defaults(script_defaults=dict(self.config_defaults))
        _show_script_defaults(parser, self.config_defaults)
        return parser

    def main(self, argv: list[str] | None = None) -> int:
        """Parse `argv` (default: sys.argv) and run; the exit status (2 and one line for a user mistake)."""
        args = self.build_parser().parse_args(argv)
        return run_command(args.func, args)


def _set_defaults(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """A script's own defaults: an option that has one is no longer required, and --help shows it."""
    for action in parser._actions:
        if action.dest in defaults:
            action.default, action.required = defaults[action.dest], False
            if action.help and "%(default)" not in action.help and "default" not in action.help:
                action.help += " (default: %(default)s)"


def _show_script_defaults(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """--help of a tree's script shows that tree's training defaults (e.g. Train_Multimodal's seq_len 8)."""
    from emenet.training.config import AUDIOVISUAL_TREE_DEFAULTS
    shown = {**(AUDIOVISUAL_TREE_DEFAULTS if defaults.get("modality") == "audiovisual" else {}), **defaults}
    for action in parser._actions:
        if action.dest in shown and action.help and "(default: " in action.help:
            action.help = action.help[:action.help.rindex("(default: ")] + f"(default: {shown[action.dest]})"


if __name__ == "__main__":
    sys.exit(main())
