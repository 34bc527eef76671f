"""Live EMENet demo: webcam (or a video file) -> face box, AUs, expression, valence/arousal with
uncertainty bars and the frames per second, shown in a window and/or recorded.

Ensembles: give several --names (or --checkpoint files); the bars then split the uncertainty
into aleatoric and epistemic parts. Press q in the window to quit.

Example:
    python Demo/Demo_Visual_Model.py --names teacher_exp_0 teacher_exp_1 --load_epochs 4 6 --save_file output.avi
    python Demo/Demo_Visual_Model.py --checkpoint model.pth --source utterance_1.mp4 --headless \\
        --save_file output.avi --max_frames 300
"""
from __future__ import annotations

import argparse

from emenet.errors import EMENetInputError
from emenet.face.detector_options import add_detector_arguments, detector_options_from_args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="Demo_Visual_Model.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="0", help="camera index or video file (default 0: the webcam)")
    parser.add_argument("--names", nargs="+", default=[], metavar="NAME",
                        help="model names under --checkpoints_dir (several: an ensemble)")
    parser.add_argument("--load_epochs", nargs="+", type=int, default=[], metavar="E",
                        help="epoch of each name (one epoch applies to every name)")
    parser.add_argument("--checkpoints_dir", default="./checkpoints",
                        help="folder of <name>/net_epoch_<E>_<name>.pth (default ./checkpoints)")
    parser.add_argument("--checkpoint", nargs="+", default=[], metavar="PATH", help="checkpoint files")
    parser.add_argument("--cuda", "--use_cuda", dest="cuda", action="store_true",
                        help="run the models on the GPU (--use_cuda: the original's spelling)")
    parser.add_argument("--save_file", default=None, help="record the annotated frames (.avi or .mp4)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --save_file")
    parser.add_argument("--headless", action="store_true", help="no window: only record (needs --save_file)")
    parser.add_argument("--max_frames", type=int, default=None, help="stop after this many frames")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of torch (default: torch's choice); one frame at a time gains little "
                             "from more, and on a busy machine 1 is often fastest")
    add_detector_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    from emenet.command_runner import parse_and_run
    return parse_and_run(build_parser(), argv, run)


def run(args: argparse.Namespace) -> None:
    import torch

    from emenet.inference.cli_predict import checkpoint_paths_from_args
    from emenet.video.demo import run_demo
    from emenet.inference.predictor import Predictor
    if args.threads is not None:
        if args.threads < 1:
            raise EMENetInputError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    predictor = Predictor(checkpoint_paths_from_args(args), device="cuda" if args.cuda else "cpu")
    summary = run_demo(predictor, args.source, save_file=args.save_file, show=not args.headless,
                       max_frames=args.max_frames, progress=args.headless, overwrite=args.overwrite,
                       detector=detector_options_from_args(args).build())
    recorded = f", recorded to {summary.save_file}" if summary.save_file else ""
    print(f"{summary.frames} frames (face in {summary.frames_with_face}) in {summary.seconds:.1f} s: "
          f"{summary.frames_per_second:.1f} frames/s{recorded}")


if __name__ == "__main__":
    raise SystemExit(main())
