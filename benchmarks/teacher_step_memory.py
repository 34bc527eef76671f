"""Peak memory and time of one teacher training step: the original's per-task step, the
concatenated pass, and activation checkpointing, each in its own process (its own peak).

    python benchmarks/teacher_step_memory.py                      # writes benchmarks/results/teacher_step_memory.{json,md}
    python benchmarks/teacher_step_memory.py --out /tmp/mem.json  # elsewhere

Method: EMENet-V with three task heads, random uint8 clips of 112x112 frames (data in memory),
`--train_speed fast` (the default), Adam. Each row: a fresh Python process builds the model and
optimizer, runs one warm-up step, resets the kernel's resident-memory high-water mark
(emenet.bench.measure.measure_memory) and runs `steps` more; the peak is the process's whole
resident memory (torch, model, optimizer state included), the time the mean per measured step.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from emenet.io_utils import write_atomic

SETTINGS = [  # (label, teacher_step, activation_checkpointing)
    ("per-task (original, default)", "per_task", False),
    ("concatenated pass", "concat", False),
    ("per-task + activation checkpointing", "per_task", True),
]
SHAPES = [(5, 16), (2, 30)]  # (clips per task, seq_len): the original's last defaults, then its earlier ones


def child(spec: dict) -> dict:
    import torch

    import emenet
    from emenet.bench.measure import measure_memory
    from emenet.data.augment import AugmentConfig
    from emenet.fast.training import TrainSpeed
    from emenet.training.objectives import TaskWeights, TeacherObjective
    from emenet.training.trainer import Trainer

    torch.manual_seed(0)
    model = emenet.create_model("emenet_v").train()
    model.backbone.checkpoint_activations = spec["checkpointing"]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    trainer = Trainer(model, TeacherObjective(), optimizer, torch.optim.lr_scheduler.StepLR(optimizer, 3), False, None,
                      lambda m: {}, TaskWeights({t: 1.0 for t in model.tasks}), AugmentConfig(), spec["clips"], 1, 0,
                      torch.device("cpu"), progress=False, speed=TrainSpeed.from_options("fast", "cpu"),
                      teacher_step=spec["step"])
    g = torch.Generator().manual_seed(0)
    b, t = spec["clips"], spec["seq_len"]
    batch = {"EXPR": {"labels": torch.randint(0, 7, (b, t, 1), generator=g).float()},
             "AU": {"labels": torch.randint(0, 2, (b, t, 12), generator=g).float()},
             "VA": {"labels": torch.rand(b, t, 2, generator=g) * 2 - 1}}
    for part in batch.values():
        part["mask"] = torch.ones(part["labels"].shape, dtype=torch.bool)
        part["frames"] = torch.randint(0, 256, (b, t, 3, 112, 112), dtype=torch.uint8, generator=g)
    aug = torch.Generator().manual_seed(1)
    trainer.train_step(batch, aug)  # warm-up

    def steps() -> float:
        start = time.perf_counter()
        for _ in range(spec["steps"]):
            trainer.train_step(batch, aug)
        return (time.perf_counter() - start) / spec["steps"]

    seconds, memory = measure_memory(steps)
    return {**spec, "step_s": seconds, **memory}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/teacher_step_memory.json")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(sys.stdin.read()))))
        return 0
    rows = []
    for clips, seq_len in SHAPES:
        for label, step, checkpointing in SETTINGS:
            spec = {"label": label, "step": step, "checkpointing": checkpointing, "clips": clips, "seq_len": seq_len,
                    "steps": args.steps}
            done = subprocess.run([sys.executable, __file__, "--child"], input=json.dumps(spec), text=True,
                                  capture_output=True, check=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"{clips}x{seq_len} {label}: {rows[-1]['peak_rss_mb']:.0f} MB, {rows[-1]['step_s']:.2f} s/step", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, lambda p: p.write_text(json.dumps(rows, indent=1)))
    lines = ["| clips per task x seq_len | step | peak RSS MB | s / step |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['clips']} x {r['seq_len']} | {r['label']} | {r['peak_rss_mb']:.0f} | {r['step_s']:.2f} |" for r in rows]
    write_atomic(out.with_suffix(".md"), lambda p: p.write_text("\n".join(lines) + "\n"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
