"""Inference and training frames per second of EMENet-V on this machine.

Method: random weights and inputs (speed does not depend on them), `torch.set_num_threads` left
at its default, each measurement warmed up (`--warmup` runs) then repeated (`--repeat` runs);
we report the median time and frames/s = frames per call / median. Training steps include the
forward, loss-free backward of every head (sum of logits squared) and an Adam step, as the
teacher step does, on `--batch_size` clips per task x 3 tasks x `--seq_len` frames. The data
loader is timed separately on synthetic crops when `--data_root` is given.

    python benchmarks/bench_emenet_v.py --out benchmarks/results/emenet_v_cpu.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

import emenet


def timed(fn, warmup: int, repeat: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_inference(model: torch.nn.Module, batch: int, seq_len: int, warmup: int, repeat: int) -> dict:
    x = torch.rand(batch, seq_len, 3, 112, 112)

    @torch.inference_mode()
    def run():
        model(x)
    t = timed(run, warmup, repeat)
    return {"batch": batch, "seq_len": seq_len, "median_s": t, "frames_per_s": batch * seq_len / t}


def bench_streaming(model: torch.nn.Module, frames: int, warmup: int, repeat: int) -> dict:
    x = torch.rand(frames, 1, 1, 3, 112, 112)

    @torch.inference_mode()
    def run():
        h = None
        for f in x:
            _, h = model(f, h)
    t = timed(run, warmup, repeat)
    return {"batch": 1, "seq_len": 1, "frames": frames, "median_s": t, "frames_per_s": frames / t}


def bench_train_step(model: torch.nn.Module, clips: int, seq_len: int, warmup: int, repeat: int) -> dict:
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(clips, seq_len, 3, 112, 112)

    def step():
        logits, _ = model(x)
        loss = sum(v.square().mean() for v in logits.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
    t = timed(step, warmup, repeat)
    model.eval()
    return {"clips": clips, "seq_len": seq_len, "median_s": t, "frames_per_s": clips * seq_len / t}


def bench_loader(data_root: str, batch_size: int, seq_len: int, workers: int, steps: int) -> dict:
    from torch.utils.data import DataLoader

    from emenet.data.affwild2 import load_affwild2_index
    from emenet.data.datasets import MultiTaskBatchSampler, MultiTaskClipDataset, collate_by_task
    from emenet.data.labeled import labeled_videos
    tasks = ("EXPR", "AU", "VA")
    ds = MultiTaskClipDataset(labeled_videos(load_affwild2_index(data_root), "Train_Set", tasks), tasks, seq_len, 30, 112)
    loader = DataLoader(ds, batch_sampler=MultiTaskBatchSampler(ds.task_ranges, batch_size, 0, 1, steps),
                        collate_fn=collate_by_task, num_workers=workers)
    t0 = time.perf_counter()
    frames = sum(b["frames"].shape[0] * b["frames"].shape[1] for batch in loader for b in batch.values())
    t = time.perf_counter() - t0
    return {"workers": workers, "steps": steps, "seconds": t, "frames_per_s": frames / t}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--batch_size", type=int, default=2, help="training clips per task (the original's default)")
    p.add_argument("--seq_len", type=int, default=30)
    p.add_argument("--data_root", help="synthetic or Aff-wild2 root, to time the training data loader")
    p.add_argument("--out", help="write the results as JSON (and a markdown table beside it)")
    args = p.parse_args()

    torch.manual_seed(0)
    model = emenet.create_model("emenet_v").eval()
    results = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__, "python": platform.python_version()},
        "method": f"median of {args.repeat} runs after {args.warmup} warm-up runs; random weights and inputs",
        "inference_batched_64": bench_inference(model, 1, 64, args.warmup, args.repeat),
        "inference_batched_4x64": bench_inference(model, 4, 64, args.warmup, max(2, args.repeat // 2)),
        "inference_streaming": bench_streaming(model, 32, 1, max(2, args.repeat // 2)),
        "train_step": bench_train_step(model, 3 * args.batch_size, args.seq_len, 1, max(2, args.repeat // 2)),
    }
    if args.data_root:
        results["train_loader"] = bench_loader(args.data_root, args.batch_size, args.seq_len, 1, 10)
    rows = [(k, v["frames_per_s"], v.get("median_s", v.get("seconds"))) for k, v in results.items() if isinstance(v, dict) and "frames_per_s" in v]
    table = "| measurement | frames/s | seconds per call |\n|---|---:|---:|\n" + "\n".join(f"| {k} | {f:.1f} | {s:.3f} |" for k, f, s in rows)
    print(table)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        out.with_suffix(".md").write_text(f"{results['method']}; {results['machine']}\n\n{table}\n")


if __name__ == "__main__":
    main()
