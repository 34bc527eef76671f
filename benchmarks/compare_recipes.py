"""The original's training recipe against EMENet's changes: a short distillation on synthetic data.

Method: one synthetic dataset (`emenet.data.synth`). For each recipe, `emenet distill` trains
`--members` teachers and one round of students with the same seeds and budget (epochs x clips x
frames; `--steps` caps the steps per epoch so both recipes take the same number), scores each
member and the ensemble on the validation split (challenge metrics; total = AU + EXPR + CCC
valence + CCC arousal), and writes the round summaries. Recipes:

- `original`: EMENet's defaults, the original's recipe (docs/ORIGINAL_VS_EMENET.md).
- `emenet`: every EMENet change on: one concatenated pass, the longest task's epoch, masked clips,
  per-clip augmentation, population CCC in the losses, the reset rule for adaptive lambdas,
  lambdas normalised over the trained heads, students on every frame.
- with `--ablate`, also one recipe per change: the original with only that change.

On a tiny synthetic set and a few epochs the differences mostly show how much each change moves
a short run; they are not Aff-wild2 results. Writes `<out>.json` and `<out>.md`.

    OMP_NUM_THREADS=1 python benchmarks/compare_recipes.py --work_dir runs/compare_recipes
    python benchmarks/compare_recipes.py --work_dir /tmp/cr --videos 6 --epochs 1 --members 2 --steps 2  # smoke
"""
from __future__ import annotations

import argparse
import logging
import platform
import time
from dataclasses import replace
from pathlib import Path

from emenet.io_utils import write_atomic, write_json

log = logging.getLogger("compare_recipes")

EMENET_CHANGES = {
    "teacher_step": "concat",
    "epoch_length": "longest",
    "clips": "masked",
    "augment": "per_clip",
    "loss_ccc": "population",
    "adaptive_lambda": "reset",
    "lambda_normalisation": "active",
    "student_frames": "all",
}


def recipes(ablate: bool) -> dict[str, dict[str, str]]:
    out = {"original": {}, "emenet": dict(EMENET_CHANGES)}
    if ablate:
        out.update({f"original + {k}={v}": {k: v} for k, v in EMENET_CHANGES.items()})
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work_dir", default="runs/compare_recipes", help="data and checkpoints")
    p.add_argument("--out", default="benchmarks/results/compare_recipes", help="results, without extension")
    p.add_argument("--videos", type=int, default=12, help="synthetic annotated videos")
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps", type=int, default=8, help="steps per epoch for every recipe (same budget)")
    p.add_argument("--seq_len", type=int, default=8)
    p.add_argument("--batch_size", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ablate", action="store_true", help="also the original with one change at a time")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    from emenet.data.synth import generate_synthetic_dataset
    from emenet.distill.rounds import DistillPlan, run_rounds
    from emenet.training.config import TrainConfig

    work = Path(args.work_dir)
    data = work / "data"
    if not (data / "annotations").is_dir():
        generate_synthetic_dataset(data, num_videos=args.videos, seed=args.seed, min_frames=60, max_frames=120,
                                   num_test_videos=1, progress=False)
    results = {}
    for label, changes in recipes(args.ablate).items():
        slug = label.replace(" ", "").replace("+", "_").replace("=", "-")
        base = TrainConfig(data_root=str(data), checkpoints_dir=str(work / slug / "checkpoints"),
                           loggings_dir=str(work / slug / "logs"), seq_len=args.seq_len, batch_size=args.batch_size,
                           nepochs=args.epochs, max_steps_per_epoch=args.steps, val_seq_len=64, num_workers=0,
                           seed=args.seed, lr_decay_epochs=max(1, args.epochs - 1))
        base = replace(base, **changes)
        start = time.perf_counter()
        table = run_rounds(DistillPlan(args.members, 1, str(work / slug / "annotations")), base, progress=False)
        ensembles = table[table["method"] == "ensemble"].set_index("round")
        members = table[table["method"] != "ensemble"].groupby("round")["total_score"].mean()
        results[label] = {"changes": changes, "seconds": time.perf_counter() - start,
                          "rounds": {int(r): {"ensemble_total": float(ensembles.loc[r, "total_score"]),
                                              "member_mean_total": float(members.loc[r])} for r in ensembles.index}}
        log.info("%s: %s", label, results[label]["rounds"])
    report = {"method": __doc__.split("\n\n")[1], "machine": platform.platform(), "args": vars(args),
              "results": results}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out.with_suffix(".json"), report)
    lines = ["| recipe | teachers: mean member total | teachers: ensemble total | students: mean member total "
             "| students: ensemble total | minutes |", "| --- | --- | --- | --- | --- | --- |"]
    for label, res in results.items():
        r0, r1 = res["rounds"].get(0, {}), res["rounds"].get(1, {})
        lines.append(f"| {label} | {r0.get('member_mean_total', float('nan')):.3f} | "
                     f"{r0.get('ensemble_total', float('nan')):.3f} | {r1.get('member_mean_total', float('nan')):.3f} "
                     f"| {r1.get('ensemble_total', float('nan')):.3f} | {res['seconds'] / 60:.1f} |")
    write_atomic(out.with_suffix(".md"), lambda p: p.write_text("\n".join(lines) + "\n"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
