"""`emenet test-ensemble`: the challenge submission of an ensemble, from the shell.

Training/test_ensemble.py (visual) and Train_Multimodal/test_ensemble.py (visual-audio) are
this command with different defaults: the visual-audio one sets `--audio`, which requires the
members to be EMENet-VA models, whose audio windows are cut from each test video's own track
(the checkpoint fixes the window; the options are checked against it).
"""
from __future__ import annotations

import argparse
import json
import os

from emenet.cli.options import add_output_arguments, device_from_args, non_negative_int
from emenet.errors import EMENetInputError

EXAMPLES = """
Layout under --save_dir (see emenet.challenge.submission):
    <member>/<AU|EXPR|VA>/<name>.txt, merged/<AU|EXPR|VA>/<name>.txt    challenge format
    <member>_with_uncertainty/..., merged_with_uncertainty/.../<name>.csv  + probabilities, uncertainty
Test names already done are skipped on a rerun unless --overwrite.

Example:
    python Training/create_test_set_file.py --data_dir data/affwild2 --video_dir data/videos --out test_set.parquet
    emenet test-ensemble --names teacher_0 teacher_1 --load_epochs 4 6 --test_set_file test_set.parquet
    python Training/test_ensemble.py --checkpoint a.pth b.pth --save_dir submission --cuda \\
        --ground_truth_dir data/synth/synthetic_ground_truth
"""


def add_test_ensemble_arguments(p: argparse.ArgumentParser) -> None:
    """The options of both trees' test_ensemble.py; `--audio` (Train_Multimodal's default) takes EMENet-VA
    members and checks --window_size / --sr against them."""
    from emenet.audio import SAMPLE_RATE, WINDOW_SECONDS
    from emenet.cli.predict import add_predictor_arguments
    p.epilog = EXAMPLES
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    add_predictor_arguments(p)
    p.add_argument("--test_set_file", default="test_set.parquet",
                   help="written by Training/create_test_set_file.py (default %(default)s)")
    add_output_arguments(p, "--save_dir", default="submission", help="output folder (default %(default)s)",
                         overwrite_help="redo test names that are already done")
    p.add_argument("--chunk_size", type=int, default=256, help="crops read per step (default %(default)s)")
    p.add_argument("--num_workers", type=non_negative_int, default=2,
                   help="threads reading crops (default %(default)s)")
    p.add_argument("--ground_truth_dir", default=None,
                   help="score the merged files against ground truth in this folder (<AU_Set|EXPR_Set|VA_Set>/)")
    p.add_argument("--release_format", default="abaw2", choices=["abaw2", "abaw3", "mtl"],
                   help="abaw2: the per-video files only (default); abaw3 (3rd ABAW on) or mtl (multi-task "
                        "challenge): also the ensemble's single files per challenge under "
                        "<save_dir>/merged_<format>/, rebuilt from merged/ on every run")
    p.add_argument("--no_progress", action="store_true")
    p.add_argument("--audio", action="store_true",
                   help="an EMENet-VA (visual-audio) ensemble; audio windows come from each test video's own track "
                        "(Train_Multimodal/test_ensemble.py's default)")
    p.add_argument("--window_size", type=float, default=WINDOW_SECONDS,
                   help="with --audio: seconds of audio per frame (default %(default)s; must match the checkpoints)")
    p.add_argument("--sr", type=int, default=SAMPLE_RATE, help="with --audio: audio sample rate (default %(default)s)")
    p.set_defaults(func=cmd_test_ensemble)


def _check_audio_members(members, window_size: float, sr: int) -> None:
    """Every member of the visual-audio tree is an EMENet-VA with the asked window."""
    from emenet.models.checkpoint import load_checkpoint
    want = int(round(window_size * sr))
    for m in members:
        model = load_checkpoint(m.checkpoint)
        if not model.uses_audio:
            raise EMENetInputError(f"{m.checkpoint}: a visual (EMENet-V) model; Train_Multimodal/test_ensemble.py "
                                   "and --audio take EMENet-VA checkpoints (use Training/test_ensemble.py)")
        if model.config.audio_window != want or model.config.sample_rate != sr:
            raise EMENetInputError(f"{m.checkpoint}: trained with {model.config.audio_window} samples at "
                                   f"{model.config.sample_rate} Hz per frame, but --window_size {window_size} "
                                   f"--sr {sr} asks for {want}")


def cmd_test_ensemble(args: argparse.Namespace) -> None:
    from emenet.challenge.submission import members_from_names, score_submission, write_submission
    members = members_from_names(args.names, args.load_epochs, args.checkpoints_dir, args.checkpoint)
    if args.ground_truth_dir and not os.path.isdir(args.ground_truth_dir):  # before the predictions, not after
        raise EMENetInputError(f"{args.ground_truth_dir}: ground truth folder not found")
    if args.audio:
        _check_audio_members(members, args.window_size, args.sr)
    result = write_submission(members, args.test_set_file, args.save_dir, overwrite=args.overwrite,
                              device=device_from_args(args), batch_size=args.batch_size,
                              chunk_size=args.chunk_size, num_workers=args.num_workers,
                              progress=not args.no_progress, coverage=args.coverage, conformal_file=args.conformal,
                              audio_timing=getattr(args, "audio_timing", None), backend=args.backend)
    if args.release_format != "abaw2":
        from emenet.challenge.release_submission import write_release_files
        for path in write_release_files(result.merged_dir, args.test_set_file,
                                        result.save_dir / f"merged_{args.release_format}", args.release_format,
                                        overwrite=True):
            print(f"wrote {path}")
    scores = None
    if args.ground_truth_dir:
        scores = score_submission(result.merged_dir, args.ground_truth_dir, args.test_set_file)
    print(f"{result.save_dir}: {len(result.done)} test names predicted, {len(result.skipped)} already done "
          f"({len(members)} member(s): {', '.join(result.members)})")
    if scores is not None:
        from emenet.evaluation.metrics import flatten_scores
        print(json.dumps({k: round(v, 4) for k, v in flatten_scores(scores).items()}, indent=1))
