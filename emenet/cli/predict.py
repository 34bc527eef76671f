"""`emenet predict` (videos and folders) and `emenet image` (Training/inference_one_image.py).

    emenet predict utterance_1.mp4 --names teacher_exp_0 teacher_exp_1 --load_epochs 4 6 --output_dir predictions
    emenet predict study/videos/ --checkpoint model.pth --output_dir predictions --workers 2   # or --ray auto
    emenet image --names teacher_exp_0 --load_epochs 4 --image photo.jpg

Each `add_*_arguments(parser)` fills an argparse parser and sets `func` to its `cmd_*`.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from emenet.cli.options import (add_device_arguments, add_member_arguments, add_output_arguments,
                                checkpoint_paths_from_args, device_from_args)
from emenet.errors import EMENetInputError

if TYPE_CHECKING:
    from emenet.inference.predictor import Predictor

log = logging.getLogger("emenet")


def add_predictor_arguments(p: argparse.ArgumentParser) -> None:
    """Which models to load (names and epochs, and/or files), on which device and backend, and how."""
    add_member_arguments(p, files=True)
    add_device_arguments(p, backend=True)
    p.add_argument("--batch_size", type=int, default=64, help="frames per forward pass (default 64)")
    p.add_argument("--audio_timing", default=None, choices=["exact", "legacy"],
                   help="audio-visual models: where each frame's audio window sits; legacy: the original's drifting "
                        "timing, to run its released checkpoints as they were trained (default: the checkpoint's)")
    add_coverage_arguments(p)


def add_coverage_arguments(p: argparse.ArgumentParser) -> None:
    """`--coverage` / `--conformal`: conformal sets and intervals per frame (emenet.conformal)."""
    p.add_argument("--coverage", type=float, default=None, metavar="C",
                   help="add conformal sets and intervals at target coverage C (e.g. 0.9): EXPR_set, AU<k>_set, "
                        "valence_lo/hi, arousal_lo/hi, abstain_<task>; needs a calibration fitted by `emenet "
                        "conformal` (found beside the checkpoints by their hashes)")
    p.add_argument("--conformal", default=None, metavar="FILE",
                   help="the conformal calibration file to use (default: conformal_<key>.json beside the checkpoints)")


def predictor_from_args(args: argparse.Namespace) -> Predictor:
    from emenet.inference.predictor import Predictor
    return Predictor(checkpoint_paths_from_args(args), device=device_from_args(args),
                     batch_size=args.batch_size, backend=getattr(args, "backend", "auto"),
                     coverage=getattr(args, "coverage", None), conformal_file=getattr(args, "conformal", None),
                     audio_timing=getattr(args, "audio_timing", None))


# ------------------------------------------------------------------------- emenet predict

def add_predict_arguments(p: argparse.ArgumentParser) -> None:
    from emenet.video.predict import DEFAULT_MIN_TRACK_LENGTH
    p.add_argument("video", metavar="VIDEO", help="a raw video file (any format FFmpeg decodes), a folder (searched "
                   "recursively for videos) or a glob such as 'videos/**/*.mp4' (quoted)")
    p.add_argument("more_videos", nargs="*", metavar="VIDEO", help="more files, folders or globs")
    add_predictor_arguments(p)
    add_output_arguments(p, "--output_dir", default="predictions",
                         help="folder for the CSV, MP4 and PNG of one video; with several, one folder per video "
                              "inside it and summary.csv (default ./predictions)",
                         overwrite_help="replace existing outputs (several videos: redo finished ones)")
    p.add_argument("--no_progress", action="store_true", help="no progress bars")
    p.add_argument("--main_face", action="store_true", help="predict only the most persistent face track")
    p.add_argument("--audio", action="store_true",
                   help="audio-visual prediction with EMENet-VA checkpoints: each frame also hears a 0.63 s window "
                        "of the video's audio track, centred on it")
    p.add_argument("--min_track_length", type=int, default=DEFAULT_MIN_TRACK_LENGTH, metavar="N",
                   help=f"drop face tracks with fewer than N detected frames (default {DEFAULT_MIN_TRACK_LENGTH}; "
                        "the most persistent track is always kept)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="videos predicted at a time in local processes (default 1); with --ray, Ray actors "
                        "(default one per GPU, else one per CPU)")
    p.add_argument("--report", action="store_true",
                   help="also an interactive HTML report per video (<stem>_report.html; needs the report extra: "
                        "pip install 'emenet[report]'); a folder run adds report_index.html")
    p.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="'auto' starts a local Ray, an address joins a cluster: one task per video")
    from emenet.face.detector_options import add_detector_arguments
    add_detector_arguments(p)
    p.set_defaults(func=cmd_predict)


def check_audio_flag(checkpoints: list[Path], audio: bool) -> None:
    """`--audio` goes with EMENet-VA checkpoints, and only with them (one line otherwise)."""
    from emenet.models.checkpoint import load_checkpoint
    for path in checkpoints:
        is_va = load_checkpoint(path).uses_audio
        if is_va and not audio:
            raise EMENetInputError(f"{path}: an audio-visual (EMENet-VA) model; add --audio to predict with the "
                                   "video's audio track, or give a visual checkpoint")
        if audio and not is_va:
            raise EMENetInputError(f"{path}: a visual (EMENet-V) model; --audio needs EMENet-VA checkpoints")


def cmd_predict(args: argparse.Namespace) -> None:
    from emenet.video.batch import is_batch_input
    if args.min_track_length < 1:
        raise EMENetInputError(f"--min_track_length must be at least 1, got {args.min_track_length}")
    if args.report:
        from emenet.extras import require
        require("plotly")
    check_audio_flag(checkpoint_paths_from_args(args), args.audio)
    if args.more_videos or is_batch_input(args.video):
        return _predict_many(args)
    if args.workers or args.ray:
        log.warning("--workers and --ray apply to several videos; one video runs in this process")
    from emenet.video.outputs import predict_video_to_files
    from emenet.face.detector_options import detector_options_from_args
    predictor = predictor_from_args(args)
    out = predict_video_to_files(predictor, args.video, args.output_dir, overwrite=args.overwrite,
                                 progress=not args.no_progress, main_face=args.main_face,
                                 min_track_length=args.min_track_length, report=args.report,
                                 detector=detector_options_from_args(args).build())
    result = out.result
    print(f"{args.video}: {result.num_frames} frames, face found in {int(result.any_face.sum())}, "
          f"{len(result.predictions)} face track(s), {out.frames_per_second:.1f} frames/s")
    for path in out.paths:
        print(f"  {path}")


def _predict_many(args: argparse.Namespace) -> None:
    """Several videos: per-video folders, summary.csv, resumable; one error line if any failed."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from emenet.conformal.apply import conformal_from_args
    from emenet.video.batch import predict_videos
    from emenet.video.job import PredictSettings
    from emenet.video.workers import PredictorSpec
    from emenet.face.detector_options import detector_options_from_args
    checkpoints = checkpoint_paths_from_args(args)
    conformal = conformal_from_args(checkpoints, args.coverage, args.conformal)  # checked once, before any video
    spec = PredictorSpec(tuple(str(p) for p in checkpoints),
                         device_from_args(args), args.batch_size, getattr(args, "backend", "auto"),
                         coverage=None if conformal is None else conformal.coverage,
                         conformal_file=None if conformal is None else str(conformal.source))
    settings = PredictSettings(main_face=args.main_face, min_track_length=args.min_track_length, report=args.report,
                               detector=detector_options_from_args(args))
    with logging_redirect_tqdm():
        report = predict_videos([args.video, *args.more_videos], args.output_dir, spec, settings,
                                overwrite=args.overwrite, workers=args.workers, ray_address=args.ray,
                                progress=not args.no_progress)
    print(report.format())
    if report.failed:
        raise EMENetInputError(f"{len(report.failed)} of {len(report.outcomes)} video(s) failed; "
                               f"see {report.summary}")


# ------------------------------------------------------------- inference_one_image.py

def add_image_arguments(p: argparse.ArgumentParser) -> None:
    add_predictor_arguments(p)
    p.add_argument("--image", required=True,
                   help="a 112x112 aligned face crop (used as is) or a photo (every face is detected, aligned and "
                        "predicted)")
    add_output_arguments(p, "--output_dir", default="inference_output", help="folder for the PNG, PDF and JSON")
    p.add_argument("--auxiliary", "--auxillary", action="store_true",
                   help="accepted for compatibility; the face-alignment head is detected from the checkpoint")
    p.add_argument("--largest_face", action="store_true",
                   help="predict only the largest face of a photo (the one-face output)")
    from emenet.face.detector_options import add_detector_arguments
    add_detector_arguments(p)
    p.set_defaults(func=cmd_image)


def cmd_image(args: argparse.Namespace) -> None:
    from emenet.inference.image import predict_image
    from emenet.video.outputs import format_image_prediction, write_image_outputs
    predictor = predictor_from_args(args)
    if args.auxiliary and not predictor.has_landmarks:
        log.warning("--auxiliary given, but the checkpoint has no face-alignment head; no landmarks")
    from emenet.face.detector_options import detector_options_from_args
    detector = detector_options_from_args(args).build()
    result = predict_image(predictor, args.image, detector=detector, largest_face_only=args.largest_face)
    print(format_image_prediction(result))
    conformal = None
    if predictor.conformal is not None:
        from emenet.conformal.apply import prediction_columns
        from emenet.conformal.report_text import format_conformal_frame
        conformal = prediction_columns(predictor.conformal, result.predictions)
        print(format_conformal_frame(conformal.iloc[0], predictor.conformal))
    paths = write_image_outputs(result, args.output_dir, [str(p) for p in predictor.paths], overwrite=args.overwrite,
                                conformal=conformal, conformal_settings=predictor.conformal)
    print(f"written: {paths.png}, {paths.pdf}, {paths.json}")
