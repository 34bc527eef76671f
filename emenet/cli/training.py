"""`emenet train`, `train-student`, `validate`, `annotate`, `distill` and `quickstart`: parse the
options, then call emenet.training / emenet.distill.

    emenet train --data_root data/synth      # a teacher (the options of Training/train_teacher.py)
    emenet validate --checkpoint CKPT --data_root data/synth --out val.json
    emenet distill --data_root data/synth --members 5 --rounds 3 [--ray auto]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from emenet.cli.options import (add_checkpoints_dir_argument, add_data_arguments, add_device_arguments,
                                add_member_arguments, add_output_arguments, add_overwrite_argument,
                                device_from_args, non_negative_int)
from emenet.errors import EMENetInputError


def script_defaults(args: argparse.Namespace) -> dict:
    """Training options a script sets by default (e.g. Train_Multimodal's modality); YAML and flags override them."""
    return dict(getattr(args, "script_defaults", None) or {})


def _print_run(result) -> None:
    print(f"run {result.run_dir}: best epoch {result.best_epoch} (validation total score {result.best_score:.4f})")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from emenet.training.config import add_config_arguments
    add_config_arguments(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> None:
    from emenet.training.config import resolve_config
    from emenet.training.run import train_teacher
    _print_run(train_teacher(resolve_config(args, **script_defaults(args))))


def add_train_student_arguments(p: argparse.ArgumentParser) -> None:
    from emenet.training.config import add_config_arguments
    add_config_arguments(p)
    p.set_defaults(func=cmd_train_student)


def cmd_train_student(args: argparse.Namespace) -> None:
    from emenet.training.config import resolve_config
    from emenet.training.run import train_student
    _print_run(train_student(resolve_config(args, **{"name": "student_round_1_exp_0", **script_defaults(args)})))


def _add_loader_arguments(p: argparse.ArgumentParser) -> None:
    """Loader workers, the index cache and the decoded audio of EMENet-VA checkpoints."""
    p.add_argument("--num_workers", type=non_negative_int, default=0)
    p.add_argument("--cache_dir", default=None)
    p.add_argument("--audio_dir", default=None, help="decoded audio tracks for EMENet-VA checkpoints "
                   "(extract_audio_files.py; default <cache_dir>/audio, else <data_root>/.emenet_cache/audio)")


def add_annotate_arguments(p: argparse.ArgumentParser) -> None:
    add_member_arguments(p, required=True, names_help="ensemble member run names")
    add_data_arguments(p)
    p.add_argument("--out", required=True, help="annotation directory (resumable)")
    add_device_arguments(p)
    _add_loader_arguments(p)
    p.add_argument("--vis", default=None, metavar="DIR",
                   help="also write the AU-frequency and task-affinity pictures of the ensemble's soft labels here")
    add_overwrite_argument(p, "replace existing --vis pictures (the annotation itself resumes)")
    p.set_defaults(func=cmd_annotate)


def cmd_annotate(args: argparse.Namespace) -> None:
    from emenet.distill.annotate import create_annotations
    from emenet.distill.members import members_from_names
    members = members_from_names(args.names, args.load_epochs, args.checkpoints_dir)
    if args.vis:  # matplotlib only when drawing
        from emenet.viz.label_pictures import check_pictures_free, write_annotation_pictures
        check_pictures_free(args.vis, args.overwrite)
    out = create_annotations(members, args.data_root, args.out, device=device_from_args(args),
                             num_workers=args.num_workers, cache_dir=args.cache_dir, audio_dir=args.audio_dir,
                             annotations_dir=args.annotations_dir, crops_dirs=args.crops_dir)
    print(f"annotations written to {out}")
    if args.vis:
        for path in write_annotation_pictures(out, args.vis, args.overwrite):
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
    table = run_rounds(plan, resolve_config(config_args, **script_defaults(args)))
    cols = [c for c in ("round", "method", "epoch", "AU_score", "EXPR_score", "VA_ccc_valence", "VA_ccc_arousal",
                        "total_score", "kept") if c in table.columns]
    print(markdown_table(table[cols]))
    print(f"summary written to {Path(args.annotations_dir) / 'summary.csv'}")


def add_validate_arguments(p: argparse.ArgumentParser) -> None:
    add_data_arguments(p)
    p.add_argument("--checkpoint", help="a checkpoint file (ours or an original net_epoch_<E>_<name>.pth)")
    p.add_argument("--name", help="run name under --checkpoints_dir (with --load_epoch)")
    p.add_argument("--load_epoch", type=int, help="epoch of --name")
    add_checkpoints_dir_argument(p)
    p.add_argument("--split", default="Validation_Set", choices=["Train_Set", "Validation_Set"])
    add_output_arguments(p, help="write the metrics here as JSON", overwrite_help="replace an existing --out file")
    add_device_arguments(p)
    _add_loader_arguments(p)
    p.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> None:
    from emenet.run_layout import checkpoint_path
    from emenet.training.validate import validate_checkpoint
    if args.checkpoint and args.name:  # one of them would be ignored without a word
        raise EMENetInputError("give --checkpoint PATH or --name with --load_epoch, not both")
    if args.checkpoint:
        ckpt = Path(args.checkpoint)
    elif args.name and args.load_epoch is not None:
        ckpt = checkpoint_path(args.checkpoints_dir, args.name, args.load_epoch)
    else:
        raise EMENetInputError("give --checkpoint PATH, or --name and --load_epoch")
    metrics = validate_checkpoint(ckpt, args.data_root, args.out, args.split, device=device_from_args(args),
                                  num_workers=args.num_workers, cache_dir=args.cache_dir, audio_dir=args.audio_dir,
                                  annotations_dir=args.annotations_dir, crops_dirs=args.crops_dir,
                                  overwrite=args.overwrite)
    print(json.dumps(metrics, indent=2))
    if args.out:
        print(f"metrics written to {args.out}")


def add_quickstart_arguments(p: argparse.ArgumentParser) -> None:
    add_output_arguments(p, default="runs/quickstart", help="folder for the data, checkpoints, logs and metrics",
                         overwrite_help="start the training again instead of resuming it")
    p.add_argument("--nepochs", type=int, default=3)
    p.add_argument("--steps_per_epoch", type=int, default=30)
    p.set_defaults(func=cmd_quickstart)


def cmd_quickstart(args: argparse.Namespace) -> None:
    from emenet.quickstart import run_quickstart
    print(run_quickstart(Path(args.out), nepochs=args.nepochs, steps_per_epoch=args.steps_per_epoch,
                         overwrite=args.overwrite))
