"""Measured coverage of EMENet's conformal sets and intervals on held-out synthetic videos.

Method: a synthetic dataset in the Aff-wild2 layout (`emenet synth`), two small teachers trained
as the quickstart does (seeds 0 and 1; 3 short epochs), their ensemble after epoch 1 and after
epoch 3 ("trained longer"). Every validation video is predicted once; then, for each of
`--splits` seeded splits of the validation videos into halves (by source video), thresholds are
fitted on one half at each target coverage and measured on the other. The table gives the mean
and standard deviation over splits of the measured coverage and of the set size / interval width.
Also written: selective prediction (AURC, excess AURC) of the same ensembles on all validation frames.

    python benchmarks/conformal_coverage.py --out benchmarks/results/conformal_coverage   # writes .md and .json
"""
from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from emenet.conformal.fit import annotated_frames, fit_levels
from emenet.conformal.regions import SetMethod
from emenet.data.affwild2 import load_affwild2_index
from emenet.data.labeled import labeled_videos
from emenet.data.synth import generate_synthetic_dataset
from emenet.distill.members import Member
from emenet.evaluation.selective_report import selective_rows
from emenet.evaluation.validate_ensemble import (MethodOutputs, load_ensemble_members, split_videos,
                                              stream_members_and_mc_dropout)
from emenet.io_utils import write_atomic, write_json
from emenet.run_layout import checkpoint_path
from emenet.training.config import TrainConfig
from emenet.training.run import train_teacher

TARGETS = (0.8, 0.9, 0.95)


def train_members(root: Path, work: Path, members: int, nepochs: int, steps: int) -> list[str]:
    names = []
    for seed in range(members):
        name = f"coverage_teacher_{seed}"
        config = TrainConfig(name=name, data_root=str(root), checkpoints_dir=str(work / "checkpoints"),
                             loggings_dir=str(work / "logs"), nepochs=nepochs, seq_len=8, batch_size=2, seed=seed,
                             max_steps_per_epoch=steps, load_epoch=-1, num_workers=0)
        train_teacher(config, progress=False)
        names.append(name)
    return names


def measure_ensemble(members: list[Member], root: Path, splits: int, method: SetMethod) -> dict:
    models, tasks = load_ensemble_members(members, "cpu")
    index = load_affwild2_index(root)
    videos = labeled_videos(index, "Validation_Set", tasks)
    groups = dict(zip(index.videos["name"].astype(str), index.videos["video"].astype(str)))
    probs, unc = [{}] * len(videos), [{}] * len(videos)
    for vid, logits, _ in stream_members_and_mc_dropout(models, videos, tasks, 0, 0, 32, "cpu", 0, 0, False):
        out = MethodOutputs.from_logits(logits)
        probs[vid], unc[vid] = out.probs, out.uncertainty
    per_split = []
    for seed in range(splits):
        cal, held = split_videos(videos, 0.5, seed, groups)
        per_split.append(fit_levels(annotated_frames(videos, probs, cal, tasks),
                                    annotated_frames(videos, probs, held, tasks), TARGETS, method))
    everything = list(range(len(videos)))
    all_p, all_y = annotated_frames(videos, probs, everything, tasks)
    all_u = {}
    for task in all_p:  # the uncertainty of the same annotated frames
        parts = []
        for i in everything:
            if task in videos[i].labels:
                keep = videos[i].masks[task].any(axis=1)
                parts.append({m: u[keep] for m, u in unc[i][task].items()})
        all_u[task] = {m: np.concatenate([p[m] for p in parts]) for m in ("total", "aleatoric", "epistemic")}
    selective = selective_rows("ensemble", all_p, all_y, all_u, ("total", "aleatoric", "epistemic"))[0]
    return {"videos": len(videos), "frames": {t: int(len(y)) for t, y in all_y.items()}, "splits": per_split,
            "selective": selective}


def summarise(result: dict) -> list[dict]:
    rows = []
    for target in TARGETS:
        key = f"{target:g}"
        row = {"target": target}
        for task, size in (("EXPR", "mean_set_size"), ("AU", "mean_undecided"), ("valence", "mean_width"),
                           ("arousal", "mean_width")):
            cov = [s[key]["measured"][task]["coverage"] for s in result["splits"] if task in s[key]["measured"]]
            siz = [s[key]["measured"][task][size] for s in result["splits"] if task in s[key]["measured"]]
            row[f"{task}_coverage"] = (float(np.mean(cov)), float(np.std(cov)))
            row[f"{task}_{size}"] = (float(np.mean(siz)), float(np.std(siz)))
        rows.append(row)
    return rows


def markdown(results: dict, args: argparse.Namespace, seconds: float) -> str:
    lines = ["# Conformal coverage on held-out synthetic videos", "",
             f"Synthetic dataset of {args.num_videos} videos (`emenet synth`, seed 0); an ensemble of {args.members} "
             f"teachers trained like the quickstart ({args.nepochs} epochs of {args.steps} steps); "
             f"{args.splits} seeded splits of the validation videos into calibration and evaluation halves (by "
             f"source video). Mean +- standard deviation over splits. EXPR: APS sets (set size = expressions in "
             f"the set); AU: per-AU sets, coverage over all annotated AU decisions (undecided = AUs whose set is "
             f"{{0, 1}} or empty, of 12); valence/arousal: CQR intervals from the 20-bin CDF (width in VA units, "
             f"range 2).", ""]
    for label, result in results.items():
        lines += [f"## {label}", "", f"{result['videos']} validation videos; annotated frames {result['frames']}.", "",
                  "| target | EXPR coverage | EXPR set size | AU coverage | AU undecided | valence coverage | "
                  "valence width | arousal coverage | arousal width |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in summarise(result):
            cells = [f"{row['target']:g}"] + [f"{m:.3f} +- {s:.3f}" for m, s in (v for k, v in row.items() if k != "target")]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "Selective prediction of the ensemble, all validation frames (lower is better):", "",
                  "| score | EXPR error aurc | eaurc | AU error aurc | eaurc | valence abs err aurc | eaurc | "
                  "arousal abs err aurc | eaurc |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in result["selective"]:
            vals = [r.get(f"{p}_{k}", float("nan")) for p in ("EXPR_error", "AU_error", "valence_abserr",
                                                               "arousal_abserr") for k in ("aurc", "eaurc")]
            lines.append(f"| {r['score']} | " + " | ".join(f"{v:.4f}" for v in vals) + " |")
        lines.append("")
    lines += [f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}; "
              f"{seconds / 60:.1f} min in all. Command: `python benchmarks/conformal_coverage.py --out {args.out}`.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/conformal_coverage", help="path without extension")
    parser.add_argument("--work", default="runs/conformal_coverage", help="data and checkpoints (kept for reruns)")
    parser.add_argument("--num_videos", type=int, default=32)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--nepochs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--splits", type=int, default=20)
    args = parser.parse_args()
    start = time.perf_counter()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    work = Path(args.work)
    root = work / "data"
    if not (root / "synth_manifest.json").is_file():
        generate_synthetic_dataset(root, num_videos=args.num_videos, seed=0, overwrite=True, progress=False)
    names = train_members(root, work, args.members, args.nepochs, args.steps)
    results = {}
    for epoch, label in ((1, "after epoch 1"), (args.nepochs, f"after epoch {args.nepochs} (trained longer)")):
        members = [Member(n, epoch, checkpoint_path(work / "checkpoints", n, epoch)) for n in names]
        results[label] = measure_ensemble(members, root, args.splits, SetMethod())
    out = Path(args.out)
    write_json(out.with_suffix(".json"), {k: {"videos": v["videos"], "frames": v["frames"], "splits": len(v["splits"]),
                                            "summary": summarise(v), "selective": v["selective"]}
                                        for k, v in results.items()})
    text = markdown(results, args, time.perf_counter() - start)
    write_atomic(out.with_suffix(".md"), lambda p: p.write_text(text))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
