"""Does hearing help? EMENet-V against EMENet-VA on synthetic data whose voice carries arousal.

Method: one synthetic dataset (`emenet.data.synth`: the cartoon face shows expression, AUs and
valence/arousal; the voice of `synth_audio` gets louder, higher and faster with arousal). For
each seed, EMENet-V (`--modality visual`) and EMENet-VA (`--modality audiovisual`) are trained as
teachers with the same options, seed and budget (epochs x steps x clips x frames), from random
initialisation, on the tasks given (default VA alone, so every step teaches valence/arousal),
and scored on the validation split by the challenge CCC after every epoch. We report the last
epoch (same budget for both), not the best, and no option was tuned for either model.

The voice-activity teacher (silero-vad, the `vad` extra) is also checked against the synthetic
ground truth (`synthetic_ground_truth/voice_activity`, 1 where a syllable sounds in the frame):
AUROC and accuracy at 0.5 of its per-frame speech probability (mean over the frame's 0.63 s
window, the VAD head's target), and its correlation with the share of voiced frames in the window.

Runs resume (a rerun reuses the data, audio cache and finished epochs). Writes
`<out>.json` and `<out>.md` (default benchmarks/results/compare_va_v).

    OMP_NUM_THREADS=1 python benchmarks/compare_va_v.py --work_dir runs/compare_va_v
"""
from __future__ import annotations

import argparse
import logging
import platform
import time
from pathlib import Path

import numpy as np
import torch

from emenet.io_utils import write_atomic, write_json

log = logging.getLogger("compare_va_v")
MODELS = {"EMENet-V": "visual", "EMENet-VA": "audiovisual"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work_dir", default="runs/compare_va_v", help="data, audio cache and checkpoints")
    p.add_argument("--out", default="benchmarks/results/compare_va_v", help="results: <out>.json and <out>.md")
    p.add_argument("--num_videos", type=int, default=10)
    p.add_argument("--min_frames", type=int, default=150)
    p.add_argument("--max_frames", type=int, default=210)
    p.add_argument("--data_seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (each trains both models)")
    p.add_argument("--tasks", nargs="+", default=["VA"])
    p.add_argument("--nepochs", type=int, default=2)
    p.add_argument("--steps", type=int, default=40, help="steps per epoch")
    p.add_argument("--batch_size", type=int, default=4, help="clips per task per step")
    p.add_argument("--seq_len", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--skip_vad", action="store_true", help="do not check the VAD teacher")
    return p.parse_args(argv)


def make_data(work_dir: Path, args: argparse.Namespace) -> Path:
    from emenet.data.synth import generate_synthetic_dataset
    root = work_dir / "data"
    if not (root / "synth_manifest.json").is_file():
        generate_synthetic_dataset(root, num_videos=args.num_videos, seed=args.data_seed, min_frames=args.min_frames,
                                   max_frames=args.max_frames, num_test_videos=0, overwrite=True)
    return root


def train_both(root: Path, work_dir: Path, seed: int, args: argparse.Namespace) -> dict[str, dict]:
    from emenet.training.config import TrainConfig
    from emenet.run_layout import completed_epochs
    from emenet.training.run import train_teacher
    out = {}
    for label, modality in MODELS.items():
        name = f"{modality}_seed{seed}"
        config = TrainConfig(name=name, data_root=str(root), checkpoints_dir=str(work_dir / "checkpoints"),
                             loggings_dir=str(work_dir / "logs"), cache_dir=str(work_dir / "cache"), seed=seed,
                             tasks=list(args.tasks), nepochs=args.nepochs, max_steps_per_epoch=args.steps,
                             batch_size=args.batch_size, seq_len=args.seq_len, lr=args.lr, num_workers=0,
                             modality=modality, load_epoch=-1)
        done_before = completed_epochs(config.run_dir, name)
        started = time.perf_counter()
        result = train_teacher(config)
        seconds = time.perf_counter() - started if not done_before else None  # None: (partly) trained earlier
        last = result.history[-1]
        out[label] = {"run": name, "epochs": [h["epoch"] for h in result.history], "wall_seconds": seconds,
                      **{k: last[k] for k in last if k.startswith(("VA_ccc", "AU_score", "EXPR_score", "total_score"))},
                      "train_loss_last_epoch": last.get("train_loss"),
                      "per_epoch": [{k: h[k] for k in ("epoch", "VA_ccc_valence", "VA_ccc_arousal") if k in h}
                                    for h in result.history]}
        log.info("%s seed %d: %s", label, seed, {k: round(v, 4) for k, v in out[label].items()
                                                 if k.startswith("VA_ccc")})
    return out


def vad_agreement(root: Path, work_dir: Path) -> dict:
    """The silero-vad teacher's per-frame speech probability against the synthetic voice activity."""
    from sklearn.metrics import roc_auc_score

    from emenet.audio import window_length
    from emenet.data.affwild2 import load_affwild2_index
    from emenet.data.audio_windows import prepare_audio_tracks
    from emenet.models.vad_teacher import SileroVAD

    threads = torch.get_num_threads()
    teacher = SileroVAD()
    torch.set_num_threads(threads)
    index = load_affwild2_index(root, cache_dir=work_dir / "cache")
    table = index.videos.set_index("name")
    tracks = prepare_audio_tracks(table["video_path"].map(Path).tolist(), work_dir / "cache" / "audio", progress=False)
    width = window_length()
    probs, voiced, share = [], [], []
    for name in table.index:
        truth_file = root / "synthetic_ground_truth" / "voice_activity" / f"{name}.txt"
        truth = np.loadtxt(truth_file, skiprows=1).astype(np.float32)
        path, fps = Path(table.at[name, "video_path"]), float(table.at[name, "fps"])
        samples = np.load(tracks[path])
        probs.append(teacher.frame_probabilities([samples], [fps], [len(truth)], width)[0])
        voiced.append(truth)
        share.append(_voiced_share(truth, fps, width))
    p, y, s = np.concatenate(probs), np.concatenate(voiced), np.concatenate(share)
    return {"teacher": teacher.identity, "frames": int(len(y)), "names": int(len(table)), "voiced_rate": float(y.mean()),
            "auroc": float(roc_auc_score(y, p)), "accuracy_at_0.5": float(((p > 0.5) == (y > 0.5)).mean()),
            "mean_prob_voiced": float(p[y > 0.5].mean()), "mean_prob_silent": float(p[y < 0.5].mean()),
            "pearson_with_voiced_share_in_window": float(np.corrcoef(p, s)[0, 1])}


def _voiced_share(truth: np.ndarray, fps: float, width: int, sample_rate: int = 16_000) -> np.ndarray:
    """Share of voiced frames among the frames whose centre lies in each frame's audio window."""
    half = width / 2 / sample_rate * fps  # window half-width in frames
    k = np.arange(len(truth))
    cum = np.concatenate([[0.0], np.cumsum(truth)])
    lo = np.clip(np.ceil(k - half).astype(int), 0, len(truth))
    hi = np.clip(np.floor(k + half).astype(int) + 1, 0, len(truth))
    return (cum[hi] - cum[lo]) / np.maximum(hi - lo, 1)


def markdown(result: dict) -> str:
    lines = ["# EMENet-V vs EMENet-VA on synthetic data (audio carries arousal)", "",
             f"{result['method']}", "",
             f"Machine: {result['machine']}. Budget per model: {result['budget']}.", "",
             "| seed | model | valence CCC | arousal CCC | mean CCC | wall s (shared machine) |",
             "|---:|---|---:|---:|---:|---:|"]
    for seed, models in result["runs"].items():
        for label, r in models.items():
            wall = "earlier run" if r["wall_seconds"] is None else f"{r['wall_seconds']:.0f}"
            lines.append(f"| {seed} | {label} | {r['VA_ccc_valence']:.4f} | {r['VA_ccc_arousal']:.4f} | "
                         f"{r['VA_ccc_mean']:.4f} | {wall} |")
    if "mean_over_seeds" in result:
        for label, r in result["mean_over_seeds"].items():
            lines.append(f"| mean | {label} | {r['VA_ccc_valence']:.4f} | {r['VA_ccc_arousal']:.4f} | "
                         f"{r['VA_ccc_mean']:.4f} | |")
    vad = result.get("vad_teacher")
    if vad:
        lines += ["", "## Voice-activity teacher vs the synthetic voice activity", "",
                  f"{vad['teacher']} on {vad['frames']} frames of {vad['names']} names (voiced {vad['voiced_rate']:.2f}): "
                  f"AUROC {vad['auroc']:.3f}, accuracy at 0.5 {vad['accuracy_at_0.5']:.3f}, mean probability "
                  f"{vad['mean_prob_voiced']:.3f} when voiced / {vad['mean_prob_silent']:.3f} when silent, Pearson "
                  f"r with the voiced share of the window {vad['pearson_with_voiced_share_in_window']:.3f}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    work_dir = Path(args.work_dir)
    started = time.perf_counter()
    root = make_data(work_dir, args)
    runs = {str(seed): train_both(root, work_dir, seed, args) for seed in args.seeds}
    result = {
        "method": (f"Teachers trained from random initialisation on tasks {args.tasks}, {args.nepochs} epochs x "
                   f"{args.steps} steps x {args.batch_size} clips x {args.seq_len} frames, Adam lr {args.lr}; "
                   f"validation CCC of the last epoch; seeds {args.seeds}; synthetic data: {args.num_videos} videos "
                   f"of {args.min_frames}-{args.max_frames} frames (data seed {args.data_seed})."),
        "machine": f"{platform.platform()}, torch {torch.__version__}, {torch.get_num_threads()} threads",
        "budget": {"nepochs": args.nepochs, "steps_per_epoch": args.steps, "batch_size": args.batch_size,
                   "seq_len": args.seq_len, "tasks": args.tasks, "lr": args.lr},
        "runs": runs,
    }
    if len(args.seeds) > 1:
        result["mean_over_seeds"] = {label: {k: float(np.mean([runs[s][label][k] for s in runs]))
                                             for k in ("VA_ccc_valence", "VA_ccc_arousal", "VA_ccc_mean")}
                                     for label in MODELS}
    if not args.skip_vad:
        result["vad_teacher"] = vad_agreement(root, work_dir)
    result["wall_seconds"] = time.perf_counter() - started
    out = Path(args.out)
    write_json(out.with_suffix(".json"), result)
    write_atomic(out.with_suffix(".md"), lambda p: p.write_text(markdown(result)))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
