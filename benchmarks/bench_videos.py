"""Videos per minute of `emenet predict` over a folder: 1 and 2 local workers, and Ray local.

Method: a folder of synthetic videos (`emenet synth`: cartoon faces, some videos with two
people; or `--videos DIR`), a random-weight EMENet-V checkpoint (speed does not depend on the
weights). Each mode runs in a fresh Python process of its own, from an empty output folder,
and is timed end to end as a user sees it: start-up of the workers (imports, model loading;
Ray's start for Ray local), every video's two passes (face detection, prediction) and outputs
(CSV, annotated MP4, timeline PNG). videos/minute = videos / wall time * 60. "busy" is the
sum of the per-video times (work without start-up). Peak memory per worker is the largest
peak resident set size (ru_maxrss) a worker reported after a video; for 1 worker the worker
is the main process. The load average before and after each mode is recorded, because other
work on the machine slows every mode.

    python benchmarks/bench_videos.py --out benchmarks/results/videos_cpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from emenet.io_utils import write_atomic

MODES = {"1 worker": {"workers": 1}, "2 workers": {"workers": 2}, "Ray local, 2 actors": {"workers": 2, "ray": "auto"}}


def run_mode(videos: str, checkpoint: str, out: str, workers: int, ray: str | None) -> dict:
    """One mode, in this process: predict every video into `out`; timings and memory."""
    from emenet.video import PredictorSpec, predict_videos
    start = time.perf_counter()
    report = predict_videos([videos], out, PredictorSpec((checkpoint,)), workers=workers, ray_address=ray,
                            progress=False)
    wall = time.perf_counter() - start
    done = [o for o in report.outcomes if o.status == "done"]
    peaks: dict[int, float] = {}
    for o in done:
        peaks[o.worker] = max(peaks.get(o.worker, 0.0), o.peak_rss_mb or 0.0)
    return {"videos": len(report.outcomes), "done": len(done), "failed": len(report.failed),
            "frames": sum(o.frames for o in done), "tracks": sum(o.tracks for o in done),
            "wall_s": wall, "busy_s": sum(o.seconds for o in done), "videos_per_minute": 60 * len(done) / wall,
            "frames_per_s": sum(o.frames for o in done) / wall, "workers_seen": len(peaks),
            "peak_rss_mb_per_worker": max(peaks.values()) if peaks else None}


def make_inputs(root: Path, num_videos: int, frames: int) -> tuple[str, str]:
    import torch

    import emenet
    from emenet.data.synth import generate_synthetic_dataset
    summary = generate_synthetic_dataset(root / "synth", num_videos=num_videos,
                                         two_person_videos=max(1, num_videos // 3), num_test_videos=0,
                                         min_frames=frames, max_frames=frames, progress=False)
    torch.manual_seed(0)
    checkpoint = emenet.save_checkpoint(root / "model.pth", emenet.create_model("emenet_v"), 1)
    return str(summary.out_dir / "videos"), str(checkpoint)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", help="a folder of videos (default: synthetic ones)")
    p.add_argument("--checkpoint", help="a checkpoint (default: random weights)")
    p.add_argument("--num_videos", type=int, default=6, help="synthetic videos (a third with two people)")
    p.add_argument("--frames", type=int, default=60, help="frames per synthetic video")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument("--out", help="write the results as JSON (and a markdown table beside it)")
    p.add_argument("--run_mode", help=argparse.SUPPRESS)  # internal: one mode in a fresh process
    p.add_argument("--mode_out", help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.run_mode:
        mode = MODES[args.run_mode]
        print(json.dumps(run_mode(args.videos, args.checkpoint, args.mode_out, mode["workers"], mode.get("ray"))))
        return

    with tempfile.TemporaryDirectory(prefix="bench_videos_") as tmp:
        videos, checkpoint = args.videos, args.checkpoint
        if not videos or not checkpoint:
            made_videos, made_checkpoint = make_inputs(Path(tmp), args.num_videos, args.frames)
            videos, checkpoint = videos or made_videos, checkpoint or made_checkpoint
        results: dict = {
            "machine": {"platform": platform.platform(), "cores": os.cpu_count(), "python": platform.python_version()},
            "method": __doc__.split("Method: ")[1].split("\n\n")[0].replace("\n", " "),
            "inputs": {"videos": videos if args.videos else f"{args.num_videos} synthetic videos of {args.frames} "
                                                              f"frames (320x240 to 512x288, a third with two people)"},
            "modes": {},
        }
        import torch
        results["machine"]["torch"] = torch.__version__
        for name in args.modes:
            load_before = os.getloadavg()
            run = subprocess.run([sys.executable, __file__, "--run_mode", name, "--videos", videos, "--checkpoint",
                                  checkpoint, "--mode_out", str(Path(tmp) / f"out_{len(results['modes'])}")],
                                 capture_output=True, text=True, check=False)
            if run.returncode != 0:
                raise SystemExit(f"{name} failed:\n{run.stderr[-3000:]}")
            measured = json.loads(run.stdout.strip().splitlines()[-1])
            measured["load_average_before"] = [round(x, 2) for x in load_before]
            measured["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
            results["modes"][name] = measured
            print(f"{name}: {measured['videos_per_minute']:.2f} videos/min", flush=True)

    head = ("| mode | videos | frames | wall s | busy s | videos/min | frames/s | peak RSS per worker (MiB) "
            "| load avg before -> after |")
    rows = [f"| {k} | {m['done']} | {m['frames']} | {m['wall_s']:.1f} | {m['busy_s']:.1f} "
            f"| {m['videos_per_minute']:.2f} | {m['frames_per_s']:.2f} | {m['peak_rss_mb_per_worker']:.0f} "
            f"| {m['load_average_before'][0]:.2f} -> {m['load_average_after'][0]:.2f} |"
            for k, m in results["modes"].items()]
    table = "\n".join([head, "|---|---:|---:|---:|---:|---:|---:|---:|---|", *rows])
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        report = (f"Method: {results['method']}\n\nInputs: {results['inputs']['videos']}. "
                  f"Machine: {results['machine']}.\n\n{table}\n")
        write_atomic(out, lambda p: p.write_text(json.dumps(results, indent=2) + "\n"))
        write_atomic(out.with_suffix(".md"), lambda p: p.write_text(report))


if __name__ == "__main__":
    main()
