"""The benchmark's GPU column: the same inference and training workloads on a CUDA device.

    python benchmarks/bench_gpu.py --out_dir benchmarks/results      # on a machine with CUDA

Method. Every figure is frames per second of wall time between two `torch.cuda.synchronize()`
calls (so queued kernels are counted), the median over `repeat` timed calls after `warmup`
untimed ones (torch.compile's first calls compile; they are warm-up). Each path is compared
with the eager fp32 baseline measured in the same process, timed alternately (paired ratio), so
the ratio holds even where the clock or another tenant moves both numbers. The workloads are
the CPU suite's: `members` EMENet-V models on one 64-frame sequence (batched), one frame per
call with the GRU state carried (streaming), and the trainer's teacher and student steps.

Paths: `fp32` (eager), `bf16` (autocast to bfloat16; logits compared with fp32's),
`compile_bf16` (torch.compile of each member plus autocast), `graphs_bf16` (torch.compile with
mode "reduce-overhead", i.e. CUDA graphs, which is what one-frame streaming needs: each call is
a few hundred tiny kernels, so launch overhead, not arithmetic, bounds it). ONNX Runtime's CUDA
provider is measured when the installed onnxruntime offers it; otherwise the report says so.
"""
from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from emenet.bench.measure import library_versions, machine_info, machine_slug, paired_speedup, time_calls
from emenet.io_utils import write_json

log = logging.getLogger(__name__)

PATHS = ("fp32", "bf16", "compile_bf16", "graphs_bf16")


def _synced(fn: Callable[[], object]) -> Callable[[], object]:
    def call():
        out = fn()
        torch.cuda.synchronize()
        return out
    return call


def _forwards(models: list[torch.nn.Module], path: str) -> tuple[list[Callable], contextlib.AbstractContextManager]:
    if path == "fp32":
        return list(models), contextlib.nullcontext()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16)
    if path == "bf16":
        return list(models), autocast
    mode = "reduce-overhead" if path == "graphs_bf16" else "default"
    return [torch.compile(m, mode=mode, dynamic=False) for m in models], autocast


def inference(members: int, path: str, batch: int, stream_frames: int, warmup: int, repeat: int) -> dict:
    """Batched and streaming frames/s of `members` models on one path, with its paired ratio to fp32."""
    from emenet.bench.workloads import _frames, _models
    device = torch.device("cuda")
    models = [m.to(device) for m in _models(members)]
    frames = _frames(batch, 1).to(device)[None]  # (1, T, 3, H, W): one sequence
    stream = _frames(stream_frames, 2).to(device)
    fwd, ctx = _forwards(models, path)
    base_fwd, base_ctx = _forwards(models, "fp32")

    def batched_with(fs, c):
        def run():
            with torch.no_grad(), c:
                return [f(frames)[0] for f in fs]
        return _synced(run)

    def streaming_with(fs, c):
        def run():
            hidden: list = [None] * len(fs)
            with torch.no_grad(), c:
                for t in range(stream.shape[0]):
                    for i, f in enumerate(fs):
                        _, hidden[i] = f(stream[t][None, None], hidden=hidden[i])
        return _synced(run)

    out: dict = {"members": members, "path": path}
    for mode, fast, base, n in (("batched", batched_with(fwd, ctx), batched_with(base_fwd, base_ctx), batch),
                                ("streaming", streaming_with(fwd, ctx), streaming_with(base_fwd, base_ctx),
                                 stream_frames)):
        out[mode] = time_calls(fast, warmup, repeat).to_dict(n)
        out[mode]["paired_speedup_vs_fp32"] = 1.0 if path == "fp32" else paired_speedup(base, fast, repeat)["median"]
    ref = batched_with(base_fwd, base_ctx)()
    got = batched_with(fwd, ctx)()
    out["max_abs_logit_diff_vs_fp32"] = max(float((a[t].float() - b[t]).abs().max()) for a, b in zip(got, ref)
                                            for t in b)
    return out


def onnx_cuda(members: int, batch: int, warmup: int, repeat: int) -> dict:
    """The exported backbone on ONNX Runtime's CUDA provider, where the installed runtime has it."""
    try:
        import onnxruntime as ort
    except ImportError:
        return {"skipped": "onnxruntime is not installed"}
    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        return {"skipped": f"onnxruntime offers no CUDA provider here (providers: {', '.join(providers)})"}
    from emenet.bench.workloads import _frames, _models
    from emenet.fast.onnx_backend import export_backbone
    frames = _frames(batch, 1).numpy()
    sessions = [ort.InferenceSession(export_backbone(m.backbone), providers=["CUDAExecutionProvider"])
                for m in _models(members)]
    name = sessions[0].get_inputs()[0].name

    def run():
        return [s.run(None, {name: frames}) for s in sessions]
    return {"members": members, "backbone_batched": time_calls(run, warmup, repeat).to_dict(batch)}


def train_steps(roles: tuple[str, ...], clips: int, seq_len: int, warmup: int, repeat: int) -> list[dict]:
    """Seconds per teacher/student step on the GPU: plain fp32 and `TrainSpeed.recommended('cuda')`."""
    from emenet.bench.workloads import _trainer
    out = []
    for role in roles:
        for speed in ("baseline", "fast"):
            trainer, batch, gen = _trainer({"role": role, "speed": speed, "clips": clips, "seq_len": seq_len,
                                            "device": "cuda"})
            torch.cuda.reset_peak_memory_stats()
            timing = time_calls(_synced(lambda: trainer.train_step(batch, gen)), warmup, repeat)
            frames = sum(b["frames"].shape[0] * b["frames"].shape[1] for b in batch.values())
            out.append({"role": role, "speed": speed, "settings": trainer.speed.to_dict(),
                        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20, **timing.to_dict(frames)})
    return out


def run_gpu_suite(out_dir: Path, members: int = 5, batch: int = 64, stream_frames: int = 32, warmup: int = 3,
                  repeat: int = 10, clips: int = 2, seq_len: int = 30, name: str | None = None) -> Path:
    """Measure every GPU figure and write `<out_dir>/<machine>.json` and `.md`; returns the .md path."""
    if not torch.cuda.is_available():
        raise RuntimeError("the GPU benchmark needs CUDA; torch sees no GPU here")
    torch.backends.cudnn.benchmark = True
    info = machine_info()
    results: dict = {"machine": info, "versions": library_versions(), "method": __doc__.split("Method.")[1].strip(),
                     "settings": {"members": members, "batch": batch, "stream_frames": stream_frames,
                                  "warmup": warmup, "repeat": repeat, "clips": clips, "seq_len": seq_len},
                     "inference": [], "train": [], "onnx_cuda": None}
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = name or machine_slug(info)
    partial = out_dir / f"{stem}.partial.json"  # after every measurement: a killed run keeps what it measured
    for m in (1, members):
        for path in PATHS:
            log.info("inference: %d member(s), %s", m, path)
            try:
                results["inference"].append(inference(m, path, batch, stream_frames, warmup, repeat))
            except Exception as e:  # a path that fails on this torch/GPU is reported, not fatal
                results["inference"].append({"members": m, "path": path, "error": f"{type(e).__name__}: {e}"})
            write_json(partial, results)
    results["train"] = train_steps(("teacher", "student"), clips, seq_len, warmup, repeat)
    write_json(partial, results)
    results["onnx_cuda"] = onnx_cuda(members, batch, warmup, repeat)
    write_json(out_dir / f"{stem}.json", results)
    partial.unlink(missing_ok=True)
    md = out_dir / f"{stem}.md"
    md.write_text(render_gpu_markdown(results))
    return md


def render_gpu_markdown(r: dict) -> str:
    m, s = r["machine"], r["settings"]
    lines = [f"# EMENet speed on the GPU: {m.get('gpu')}", "",
             f"torch {r['versions'].get('torch')}; {s['members']}-member ensemble; batched = one {s['batch']}-frame "
             f"sequence; streaming = {s['stream_frames']} frames one per call; median of {s['repeat']} calls after "
             f"{s['warmup']} warm-up calls.", "", "## Inference (frames/s)", "",
             "| members | path | batched | x fp32 (paired) | streaming | x fp32 (paired) | max logit diff vs fp32 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in r["inference"]:
        if "error" in row:
            lines.append(f"| {row['members']} | {row['path']} | failed: {row['error'][:80]} | | | | |")
            continue
        b, st = row["batched"], row["streaming"]
        lines.append(f"| {row['members']} | {row['path']} | {b['frames_per_s']:.0f} | {b['paired_speedup_vs_fp32']:.2f} "
                     f"| {st['frames_per_s']:.0f} | {st['paired_speedup_vs_fp32']:.2f} "
                     f"| {row['max_abs_logit_diff_vs_fp32']:.1e} |")
    lines += ["", "## ONNX Runtime, CUDA provider", ""]
    oc = r["onnx_cuda"] or {}
    lines.append(oc["skipped"] if "skipped" in oc else
                 f"{oc['members']} exported backbones, batched: {oc['backbone_batched']['frames_per_s']:.0f} frames/s")
    lines += ["", "## Training step", "", "| role | speed | settings | s/step | frames/s | peak CUDA MB |",
              "| --- | --- | --- | --- | --- | --- |"]
    for row in r["train"]:
        on = ", ".join(k for k, v in row["settings"].items() if v) or "plain"
        lines.append(f"| {row['role']} | {row['speed']} | {on} | {row['median_s']:.4f} | {row['frames_per_s']:.0f} "
                     f"| {row['peak_cuda_mb']:.0f} |")
    lines += ["", "## Method", "", r["method"], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    p = argparse.ArgumentParser(description="EMENet's GPU benchmark column (needs CUDA).")
    p.add_argument("--out_dir", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--name", default=None, help="results file stem (default: the machine's slug)")
    p.add_argument("--quick", action="store_true", help="tiny settings: a smoke run, not numbers")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    kw = dict(members=2, batch=8, stream_frames=2, warmup=1, repeat=2, clips=1, seq_len=2) if a.quick else {}
    md = run_gpu_suite(a.out_dir, name=a.name, **kw)
    print(md.read_text())
    print(json.dumps({"report": str(md)}))
    return 0
