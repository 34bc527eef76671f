"""The `emenet` console command. Each subcommand parses its arguments and calls the package.

    emenet synth --out data/synth            # a small synthetic dataset in the Aff-wild2 layout
    emenet index --data_root data/affwild2 --vis runs/vis   # which release, what it holds, label pictures
    emenet train --data_root data/synth      # a teacher (the options of Training/train_teacher.py)
    emenet validate --checkpoint CKPT --data_root data/synth --out val.json
    emenet quickstart --out runs/quickstart  # all three on the built-in synthetic data
    emenet distill --data_root data/synth --members 5 --rounds 3 [--ray auto]
    emenet conformal --data_root data/synth --names t0 t1 --load_epochs 3 --coverage 0.9   # prediction sets
    emenet extract-audio --video_dir data/affwild2/videos --audio_outdir data/affwild2/audio  # for EMENet-VA
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from emenet.command_runner import add_debug_argument, run_command
from emenet.errors import EMENetInputError

log = logging.getLogger("emenet")


# --- subcommands -------------------------------------------------------------------------

def add_models_arguments(p: argparse.ArgumentParser) -> None:
    p.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> None:
    from emenet.models import list_models
    print("\n".join(list_models()))


def add_synth_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (Aff-wild2 layout)")
    p.add_argument("--num_videos", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    p.add_argument("--release", default="abaw2", choices=["abaw2", "abaw3", "abaw5", "abaw6", "mtl"],
                   help="the Aff-wild2 release's layout to write (8 expression classes after abaw2)")
    p.set_defaults(func=cmd_synth)


def cmd_synth(args: argparse.Namespace) -> None:
    from emenet.data.synth import generate_synthetic_dataset
    summary = generate_synthetic_dataset(args.out, num_videos=args.num_videos, seed=args.seed, overwrite=args.overwrite,
                                         release=args.release)
    print(f"synthetic Aff-wild2 data ({args.release} layout) written to {summary.out_dir}")


def add_index_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data_root", required=True, help="Aff-wild2 root of any release (or `emenet synth` output)")
    add_dataset_location_arguments(p)
    p.add_argument("--cache_dir", default=None)
    p.add_argument("--rebuild", action="store_true", help="parse the annotation files again even if cached")
    p.add_argument("--vis", default=None, metavar="DIR", help="write the AU-frequency and task-affinity pictures here")
    p.set_defaults(func=cmd_index)


def cmd_index(args: argparse.Namespace) -> None:
    from emenet.data.affwild2 import load_affwild2_index
    from emenet.viz.label_pictures import index_summary, write_index_pictures
    index = load_affwild2_index(args.data_root, cache_dir=args.cache_dir, rebuild=args.rebuild,
                                annotations_dir=args.annotations_dir, crops_dirs=args.crops_dir)
    print(json.dumps(index_summary(index), indent=2))
    if args.vis:
        for path in write_index_pictures(index, args.vis):
            print(f"wrote {path}")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from emenet.training.config import add_config_arguments
    add_config_arguments(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> None:
    from emenet.training.config import resolve_config
    from emenet.training.run import train_teacher
    result = train_teacher(resolve_config(args, **_script_defaults(args)))
    print(f"run {result.run_dir}: best epoch {result.best_epoch} (validation total score {result.best_score:.4f})")


def add_train_student_arguments(p: argparse.ArgumentParser) -> None:
    from emenet.training.config import add_config_arguments
    add_config_arguments(p)
    p.set_defaults(func=cmd_train_student)


def cmd_train_student(args: argparse.Namespace) -> None:
    from emenet.training.config import resolve_config
    from emenet.training.run import train_student
    result = train_student(resolve_config(args, **{"name": "student_round_1_exp_0", **_script_defaults(args)}))
    print(f"run {result.run_dir}: best epoch {result.best_epoch} (validation total score {result.best_score:.4f})")


def add_annotate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--names", nargs="+", required=True, help="ensemble member run names")
    p.add_argument("--load_epochs", nargs="+", type=int, required=True, help="one epoch per member (or one for all)")
    p.add_argument("--checkpoints_dir", default="./checkpoints")
    p.add_argument("--data_root", required=True, help="Aff-wild2 root (or `emenet synth` output)")
    p.add_argument("--out", required=True, help="annotation directory (resumable)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--num_workers", type=int, default=0)
    p.add_argument("--cache_dir", default=None)
    p.add_argument("--audio_dir", default=None, help="decoded audio tracks for EMENet-VA members "
                   "(extract_audio_files.py; default <cache_dir>/audio, else <data_root>/.emenet_cache/audio)")
    add_dataset_location_arguments(p)
    p.add_argument("--vis", default=None, metavar="DIR",
                   help="also write the AU-frequency and task-affinity pictures of the ensemble's soft labels here")
    p.set_defaults(func=cmd_annotate)


def cmd_annotate(args: argparse.Namespace) -> None:
    from emenet.distill.annotate import create_annotations
    from emenet.distill.members import members_from_names
    members = members_from_names(args.names, args.load_epochs, args.checkpoints_dir)
    out = create_annotations(members, args.data_root, args.out, device=args.device, num_workers=args.num_workers,
                             cache_dir=args.cache_dir, audio_dir=args.audio_dir, annotations_dir=args.annotations_dir,
                             crops_dirs=args.crops_dir)
    print(f"annotations written to {out}")
    if args.vis:
        from emenet.viz.label_pictures import write_annotation_pictures
        for path in write_annotation_pictures(out, args.vis):
            print(f"wrote {path}")


def add_distill_arguments(p: argparse.ArgumentParser) -> None:
    from emenet.training.config import add_config_arguments
    p.add_argument("--members", type=int, default=5, help="ensemble size per round")
    p.add_argument("--rounds", type=int, default=3, help="student rounds after the teachers")
    p.add_argument("--annotations_dir", default="./annotations", help="annotations and the summary table")
    p.add_argument("--ray", default=None, help="'auto' starts a local Ray cluster; an address joins one")
    p.add_argument("--shards", type=int, default=2, help="annotation shards per round on Ray")
    p.add_argument("--dataset_annotations_dir", default=None,
                   help="the Aff-wild2 annotation folder when it is not under --data_root (train's --annotations_dir)")
    p.add_argument("--keep", type=int, default=None, metavar="K",
                   help="keep the K best members of each round by validation total score, as the original chose its "
                        "ensembles (default: all); the summary's `kept` column says which")
    add_config_arguments(p, exclude=("annotations_dir",))
    p.set_defaults(func=cmd_distill)


def cmd_distill(args: argparse.Namespace) -> None:
    from emenet.distill.rounds import DistillPlan, run_rounds
    from emenet.reporting import markdown_table
    from emenet.training.config import resolve_config
    plan = DistillPlan(args.members, args.rounds, args.annotations_dir, args.ray, args.shards, args.keep)
    config_args = argparse.Namespace(**{**vars(args), "annotations_dir": args.dataset_annotations_dir})
    table = run_rounds(plan, resolve_config(config_args, **_script_defaults(args)))
    cols = [c for c in ("round", "method", "epoch", "AU_score", "EXPR_score", "VA_ccc_valence", "VA_ccc_arousal",
                        "total_score", "kept") if c in table.columns]
    print(markdown_table(table[cols]))
    print(f"summary written to {Path(args.annotations_dir) / 'summary.csv'}")


def _add_extract_audio(p: argparse.ArgumentParser) -> None:
    from emenet.data.extract_audio import add_extract_audio_arguments
    add_extract_audio_arguments(p)


def _add_bench(p: argparse.ArgumentParser) -> None:
    from emenet.bench.suite import add_bench_arguments
    add_bench_arguments(p)


def _add_predict(p: argparse.ArgumentParser) -> None:
    from emenet.inference.cli_predict import add_predict_arguments
    add_predict_arguments(p)


def _add_conformal(p: argparse.ArgumentParser) -> None:
    from emenet.conformal.cli import add_conformal_arguments
    add_conformal_arguments(p)


def add_validate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data_root", required=True, help="Aff-wild2 root (or `emenet synth` output)")
    p.add_argument("--checkpoint", help="a checkpoint file (ours or an original net_epoch_<E>_<name>.pth)")
    p.add_argument("--name", help="run name under --checkpoints_dir (with --load_epoch)")
    p.add_argument("--load_epoch", type=int, help="epoch of --name")
    p.add_argument("--checkpoints_dir", default="./checkpoints")
    p.add_argument("--split", default="Validation_Set", choices=["Train_Set", "Validation_Set"])
    p.add_argument("--out", help="write the metrics here as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--device", default="cpu")
    p.add_argument("--num_workers", type=int, default=0)
    p.add_argument("--cache_dir", default=None)
    p.add_argument("--audio_dir", default=None, help="decoded audio tracks for an EMENet-VA checkpoint "
                   "(default <cache_dir>/audio, else <data_root>/.emenet_cache/audio)")
    add_dataset_location_arguments(p)
    p.set_defaults(func=cmd_validate)


def add_dataset_location_arguments(p: argparse.ArgumentParser) -> None:
    """--annotations_dir and --crops_dir: where a release keeps what --data_root does not hold."""
    p.add_argument("--annotations_dir", default=None, help="the annotation folder of any Aff-wild2 release "
                   "(default: found under --data_root)")
    p.add_argument("--crops_dir", nargs="+", default=None, help="face crop folders, searched in order "
                   "(default: every cropped_aligned* folder of --data_root)")


def cmd_validate(args: argparse.Namespace) -> None:
    from emenet.run_layout import checkpoint_path
    from emenet.training.validate import validate_checkpoint
    if args.checkpoint:
        ckpt = Path(args.checkpoint)
    elif args.name and args.load_epoch is not None:
        ckpt = checkpoint_path(args.checkpoints_dir, args.name, args.load_epoch)
    else:
        raise EMENetInputError("give --checkpoint PATH, or --name and --load_epoch")
    metrics = validate_checkpoint(ckpt, args.data_root, args.out, args.split, device=args.device,
                                  num_workers=args.num_workers, cache_dir=args.cache_dir, audio_dir=args.audio_dir,
                                  annotations_dir=args.annotations_dir, crops_dirs=args.crops_dir,
                                  overwrite=args.overwrite)
    print(json.dumps(metrics, indent=2))
    if args.out:
        print(f"metrics written to {args.out}")


def add_quickstart_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/quickstart", help="folder for the data, checkpoints, logs and metrics")
    p.add_argument("--nepochs", type=int, default=3)
    p.add_argument("--steps_per_epoch", type=int, default=30)
    p.add_argument("--overwrite", action="store_true", help="start the training again instead of resuming it")
    p.set_defaults(func=cmd_quickstart)


def cmd_quickstart(args: argparse.Namespace) -> None:
    from emenet.quickstart import run_quickstart
    summary = run_quickstart(Path(args.out), nepochs=args.nepochs, steps_per_epoch=args.steps_per_epoch,
                             overwrite=args.overwrite)
    print(summary)


COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], str]] = {
    "quickstart": (add_quickstart_arguments, "synthetic data -> a small teacher -> validation metrics"),
    "synth": (add_synth_arguments, "write a small synthetic dataset in the Aff-wild2 layout"),
    "index": (add_index_arguments, "index an Aff-wild2 copy of any release: its layout, counts, --vis pictures"),
    "train": (add_train_arguments, "train a teacher (same options as Training/train_teacher.py)"),
    "validate": (add_validate_arguments, "score a checkpoint on the validation split"),
    "annotate": (add_annotate_arguments, "run an ensemble over every train/validation frame (soft labels)"),
    "train-student": (add_train_student_arguments, "train a student on an ensemble's annotation"),
    "distill": (add_distill_arguments, "teachers, then rounds of students (iterative self-distillation)"),
    "predict": (lambda p: _add_predict(p), "predict every frame of a raw video: CSV, annotated MP4, timeline PNG"),
    "conformal": (lambda p: _add_conformal(p), "fit conformal prediction sets and intervals for an ensemble"),
    "models": (add_models_arguments, "list the registered model names"),
    "bench": (lambda p: _add_bench(p), "measure inference, video and training speed against a plain baseline"),
    "extract-audio": (lambda p: _add_extract_audio(p), "decode every video's audio track ahead of EMENet-VA training"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emenet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_debug_argument(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add_arguments, help_text) in COMMANDS.items():
        add_arguments(command := sub.add_parser(name, help=help_text, description=help_text))
        add_debug_argument(command)
    return parser


def _run(args: argparse.Namespace) -> int:
    return run_command(args.func, args)


def main(argv: list[str] | None = None) -> int:
    return _run(build_parser().parse_args(argv))


def _script_defaults(args: argparse.Namespace) -> dict:
    """Training options a script sets by default (e.g. Train_Multimodal's modality); flags override them."""
    return dict(getattr(args, "script_defaults", None) or {})


def _script(command: str, prog: str, argv: list[str] | None, defaults: dict | None = None) -> int:
    add_arguments, help_text = COMMANDS[command]
    parser = argparse.ArgumentParser(prog=prog, description=help_text)
    add_arguments(parser)
    add_debug_argument(parser)
    parser.set_defaults(script_defaults=defaults or {})
    _show_script_defaults(parser, defaults or {})
    return _run(parser.parse_args(argv))


def _show_script_defaults(parser: argparse.ArgumentParser, defaults: dict) -> None:
    """--help of a tree's script shows that tree's defaults (e.g. Train_Multimodal's seq_len 8)."""
    from emenet.training.config import AUDIOVISUAL_TREE_DEFAULTS
    shown = {**(AUDIOVISUAL_TREE_DEFAULTS if defaults.get("modality") == "audiovisual" else {}), **defaults}
    for action in parser._actions:
        if action.dest in shown and action.help and "(default: " in action.help:
            action.help = action.help[:action.help.rindex("(default: ")] + f"(default: {shown[action.dest]})"


def run_train_teacher(argv: list[str] | None = None, **defaults) -> int:
    """Entry point of Training/train_teacher.py; Train_Multimodal's passes modality="audiovisual"."""
    return _script("train", "train_teacher.py", argv, defaults)


def run_train_student(argv: list[str] | None = None, **defaults) -> int:
    """Entry point of Training/train_student.py; Train_Multimodal's passes modality="audiovisual"."""
    return _script("train-student", "train_student.py", argv, defaults)


def run_extract_audio(argv: list[str] | None = None) -> int:
    """Entry point of Train_Multimodal/extract_audio_files.py."""
    return _script("extract-audio", "extract_audio_files.py", argv)


def run_create_annotations(argv: list[str] | None = None) -> int:
    """Entry point of Training/create_new_annotations.py."""
    return _script("annotate", "create_new_annotations.py", argv)


def run_validate(argv: list[str] | None = None) -> int:
    """Entry point of Training/validate.py."""
    return _script("validate", "validate.py", argv)


if __name__ == "__main__":
    sys.exit(main())
