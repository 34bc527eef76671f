"""`emenet demo` (Demo/Demo_Visual_Model.py): webcam or video file -> face box, AUs, expression,
valence/arousal with uncertainty bars and frames per second, shown in a window and/or recorded.

    emenet demo --names teacher_exp_0 teacher_exp_1 --load_epochs 4 6 --save_file output.avi
    emenet demo --checkpoint model.pth --source utterance_1.mp4 --headless --save_file output.avi --max_frames 300
"""
from __future__ import annotations

import argparse

from emenet.cli.options import add_device_arguments, add_member_arguments, add_output_arguments, device_from_args
from emenet.errors import EMENetInputError


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    from emenet.face.detector_options import add_detector_arguments
    p.add_argument("--source", default="0", help="camera index or video file (default 0: the webcam)")
    add_member_arguments(p, files=True)
    add_device_arguments(p)
    add_output_arguments(p, "--save_file", help="record the annotated frames (.avi or .mp4)",
                         overwrite_help="replace an existing --save_file")
    p.add_argument("--headless", action="store_true", help="no window: only record (needs --save_file)")
    p.add_argument("--max_frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of torch (default: torch's choice); one frame at a time gains little "
                        "from more, and on a busy machine 1 is often fastest")
    add_detector_arguments(p)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> None:
    import torch

    from emenet.cli.options import checkpoint_paths_from_args
    from emenet.face.detector_options import detector_options_from_args
    from emenet.video.demo import run_demo
    from emenet.inference.predictor import Predictor
    if args.threads is not None:
        if args.threads < 1:
            raise EMENetInputError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    predictor = Predictor(checkpoint_paths_from_args(args), device=device_from_args(args))
    summary = run_demo(predictor, args.source, save_file=args.save_file, show=not args.headless,
                       max_frames=args.max_frames, progress=args.headless, overwrite=args.overwrite,
                       detector=detector_options_from_args(args).build())
    recorded = f", recorded to {summary.save_file}" if summary.save_file else ""
    print(f"{summary.frames} frames (face in {summary.frames_with_face}) in {summary.seconds:.1f} s: "
          f"{summary.frames_per_second:.1f} frames/s{recorded}")
