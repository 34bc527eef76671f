"""What the benchmark suite measures. Each workload takes a JSON-able spec and returns a JSON-able dict.

The baseline of every comparison is the plain path written the obvious way: the eager fp32
model called on the same frames (`model(frames)` per member, whole batch), and for training
the trainer's step with every speed setting off (`TrainSpeed()`).
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from emenet.bench.measure import measure_memory, paired_speedup, time_calls
from emenet.models.emenet import EMENet
from emenet.models.mobilefacenet import INPUT_SIZE

BASELINE = "baseline"


def _models(members: int, seed: int = 0) -> list[EMENet]:
    from emenet.models import create_model
    out = []
    for i in range(members):
        torch.manual_seed(seed + i)  # speed does not depend on the weights; distinct members all the same
        out.append(create_model("emenet_v").eval())
    return out


def _frames(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------- inference

def _baseline_fns(models: list[EMENet], batch: torch.Tensor, stream: torch.Tensor) -> tuple[Callable, Callable]:
    def batched():
        with torch.no_grad():
            return [m(batch[None])[0] for m in models]  # one 64-frame sequence per member

    def streaming():
        hidden: list = [None] * len(models)
        with torch.no_grad():
            for frame in stream:  # one frame at a time, carrying each member's hidden state
                for i, m in enumerate(models):
                    _, hidden[i] = m(frame[None, None], hidden=hidden[i])
    return batched, streaming


def _runner_fns(runner, models: list[EMENet], batch: torch.Tensor, stream: torch.Tensor) -> tuple[Callable, Callable]:
    """The Predictor's hot path (`Runner.forward`): the same calls, without decoding."""
    def batched():
        return [logits for logits, _ in runner.forward(batch, hidden=[None] * len(models))]

    def streaming():
        hidden: list = [None] * len(models)
        for frame in stream:
            hidden = [h for _, h in runner.forward(frame[None], hidden=hidden)]
    return batched, streaming


def inference(spec: dict) -> dict:
    """Streaming (one frame per call with the hidden state) and batched frames/s of one path."""
    from emenet.fast import make_runner
    models = _models(spec["members"])
    batch, stream = _frames(spec["batch"], 1), _frames(spec["stream_frames"], 2)
    out: dict = {"members": spec["members"], "backend": spec["backend"]}
    runner = None
    if spec["backend"] == BASELINE:
        batched, streaming = _baseline_fns(models, batch, stream)
        out["setup_s"] = 0.0
    else:
        t0 = time.perf_counter()
        runner = make_runner(spec["backend"], models, "cpu", **spec.get("options", {}))
        out["setup_s"] = time.perf_counter() - t0
        batched, streaming = _runner_fns(runner, models, batch, stream)
    try:
        for mode, fn, frames in (("streaming", streaming, spec["stream_frames"]), ("batched", batched, spec["batch"])):
            timing, mem = measure_memory(lambda f=fn: time_calls(f, spec["warmup"], spec["repeat"], spec.get("budget_s")))
            out[mode] = {**timing.to_dict(frames), **mem}
        if runner is not None:  # parity with the baseline on the benchmark's own frames
            ref, ref_streaming = _baseline_fns(models, batch, stream)
            out["max_abs_logit_diff_vs_baseline"] = max(float((a[t] - b[t]).abs().max()) for a, b in
                                                        zip(batched(), ref()) for t in a)
            # The speed-up again, timed alternately with the baseline in this process: a ratio
            # that a change of load between two measurements does not move.
            for mode, base_fn, fast_fn in (("streaming", ref_streaming, streaming), ("batched", ref, batched)):
                out[mode]["paired_speedup"] = paired_speedup(base_fn, fast_fn, spec["repeat"], spec.get("budget_s"))
    finally:
        if runner is not None:
            runner.close()
    return out


# ------------------------------------------------------------------------------- videos

def _checkpoints(members: int, folder: Path) -> list[Path]:
    from emenet.models import save_checkpoint
    return [save_checkpoint(folder / f"member_{i}.pth", m, epoch=1) for i, m in enumerate(_models(members))]


def make_looped_video(source: str | Path, out: str | Path, num_frames: int) -> Path:
    """A synthetic video of `num_frames` frames: `source`'s frames played forward, backward, forward...

    Its faces move like the source's, so detection and tracking do their usual work, and the
    length is whatever the memory check needs.
    """
    from emenet.video.predict import VideoWriter, iter_video_chunks, read_video_meta
    meta = read_video_meta(source)
    frames = np.concatenate([c.frames for c in iter_video_chunks(source, 64)])
    order = np.concatenate([np.arange(len(frames)), np.arange(len(frames) - 2, 0, -1)])  # ping-pong, no repeats
    with VideoWriter(out, Fraction(meta.rate), meta.width, meta.height) as writer:
        for k in range(num_frames):
            writer.write(frames[order[k % len(order)]])
    return Path(out)


def video(spec: dict) -> dict:
    """End to end: decode, detect, track, align, predict, write CSV + annotated MP4 + timeline.

    `stages`: each stage's busy seconds and frames/s in the median run (emenet.video.stages),
    so the slowest stage is visible; `concurrent` (default true) runs the stages in threads;
    `detect_every` K > 1 searches every K-th frame for faces and follows them in between.
    """
    from emenet.face.detector_options import DetectorOptions
    from emenet.video.outputs import predict_video_to_files
    from emenet.inference.predictor import Predictor
    backend = "eager" if spec["backend"] == BASELINE else spec["backend"]
    concurrent = spec.get("concurrent", True)
    detector = DetectorOptions(detect_every=spec.get("detect_every", 1)).build()
    with tempfile.TemporaryDirectory(prefix="emenet-bench-") as tmp:
        predictor = Predictor(_checkpoints(spec["members"], Path(tmp)), backend=backend, batch_size=spec["batch"])
        runs = []
        for k in range(spec["repeat"]):
            t0 = time.perf_counter()
            result, mem = measure_memory(lambda k=k: predict_video_to_files(
                predictor, spec["video"], Path(tmp) / f"out_{k}", overwrite=True, progress=False,
                concurrent=concurrent, detector=detector))
            runs.append((time.perf_counter() - t0, result.prediction.num_frames, mem, result.stages))
        predictor.close()
    median = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    seconds, frames = median[0], runs[0][1]
    return {"members": spec["members"], "backend": backend, "video": str(spec["video"]), "num_frames": frames,
            "concurrent": concurrent, "detect_every": detector.detect_every, "repeat": len(runs), "wall_s": [r[0] for r in runs], "median_s": seconds,
            "frames_per_s": frames / seconds, "stages": median[3],
            "peak_rss_mb": max(r[2]["peak_rss_mb"] for r in runs), "memory_method": runs[0][2]["memory_method"]}


def _time_markers(command: list[str], env: dict, markers: tuple[str, ...]) -> dict[str, float]:
    """Run `command`; seconds from its start to each marker line on its stdout (stderr passes through)."""
    t0 = time.perf_counter()
    seen: dict[str, float] = {}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as proc:
        for line in proc.stdout:
            name = line.strip()
            if name in markers and name not in seen:
                seen[name] = time.perf_counter() - t0
        rc = proc.wait()
    seen["exit_s"] = time.perf_counter() - t0
    if rc != 0 or not set(markers) <= set(seen):
        raise RuntimeError(f"{' '.join(command[:4])} ... exited with {rc} before printing {sorted(set(markers) - set(seen))}")
    return seen


def cold_start(spec: dict) -> dict:
    """Seconds from the command (a new Python process) to its predictor being ready and to its
    first predicted frames, with an empty export cache (first use: ONNX export, int8
    quantisation) and then with the cache that run filled (emenet.bench.first_frame)."""
    from emenet.bench.first_frame import FIRST_FRAME_MARKER, READY_MARKER
    with tempfile.TemporaryDirectory(prefix="emenet-bench-") as tmp:
        checkpoints = [str(p) for p in _checkpoints(spec["members"], Path(tmp))]
        import matplotlib  # its font cache is not ours to rebuild: it stays where it is
        env = {**os.environ, "XDG_CACHE_HOME": str(Path(tmp) / "cache"),  # empty: the first run fills it
               "MPLCONFIGDIR": os.environ.get("MPLCONFIGDIR") or matplotlib.get_cachedir()}
        command = [sys.executable, "-m", "emenet.bench.first_frame", str(spec["video"]), spec["backend"],
                   str(spec.get("batch", 64)), *checkpoints]
        out: dict = {"members": spec["members"], "backend": spec["backend"], "video": str(spec["video"])}
        for run in ("first_use", "cached"):
            marks = _time_markers(command, env, (READY_MARKER, FIRST_FRAME_MARKER))
            out[f"{run}_ready_s"] = marks[READY_MARKER]
            out[f"{run}_first_frame_s"] = marks[FIRST_FRAME_MARKER]
    return out


def video_stages(spec: dict) -> dict:
    """Where the pipeline's time goes: decoding alone, decoding + face detection and tracking,
    and face detection + alignment alone on decoded frames (BlazeFace, the default, and Haar)."""
    from emenet.video.predict import iter_video_chunks, track_video_faces
    t0 = time.perf_counter()
    frames = sum(len(c) for c in iter_video_chunks(spec["video"], 64))
    decode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    track_video_faces(spec["video"], progress=False)
    detect_s = time.perf_counter() - t0
    out = {"num_frames": frames, "decode_s": decode_s, "decode_frames_per_s": frames / decode_s,
           "decode_detect_track_s": detect_s, "decode_detect_track_frames_per_s": frames / detect_s}
    out.update(detect_align(spec))
    return out


def detect_align(spec: dict) -> dict:
    """Face detection + 112x112 alignment alone (frames decoded beforehand, chunks of 64), in
    frames/s: the default BlazeFace (landmark-aligned crops), the same without point refinement,
    and the Haar cascade (box crops). The median of `repeat` passes over the video."""
    from emenet.face.align import alignment_transforms, crop_aligned, crop_face, crop_regions
    from emenet.face.blazeface import BlazeFaceDetector
    from emenet.face.detector import HaarFaceDetector
    from emenet.video.predict import detect_frames, iter_video_chunks
    chunks = [c.frames for c in iter_video_chunks(spec["video"], 64)]
    frames = sum(len(c) for c in chunks)
    detectors = {"blazeface": BlazeFaceDetector(), "blazeface_no_refine": BlazeFaceDetector(refine_points=0),
                 "haar": HaarFaceDetector()}

    def one_pass(detector) -> int:
        faces = 0
        for chunk in chunks:
            for frame, found in zip(chunk, detect_frames(detector, chunk)):
                if found.points is not None and len(found):
                    for affine in alignment_transforms(found.points):
                        crop_aligned(frame, affine)
                else:
                    for region in crop_regions(found.boxes):
                        crop_face(frame, region)
                faces += len(found)
        return faces

    out: dict = {"detect_align_frames": frames, "detect_align_size": list(chunks[0].shape[1:3][::-1])}
    for name, detector in detectors.items():
        one_pass(detector)  # warm-up (exports the ONNX graph on a first run)
        runs = []
        for _ in range(spec.get("repeat", 3)):
            t0 = time.perf_counter()
            faces = one_pass(detector)
            runs.append(time.perf_counter() - t0)
        seconds = sorted(runs)[len(runs) // 2]
        out[f"detect_align_{name}_frames_per_s"] = frames / seconds
        out[f"detect_align_{name}_faces_per_frame"] = faces / frames
    return out


def long_video(spec: dict) -> dict:
    """Peak memory of the whole pipeline on a short and a long looped video (after one unmeasured
    run of the short one): flat in length? The short one must fill the pipeline's queues
    (emenet.video.predict.chunks_in_flight), or the growth measured is the queues filling."""
    from emenet.video.outputs import predict_video_to_files
    from emenet.inference.predictor import Predictor
    out: dict = {"backend": spec["backend"], "members": spec["members"], "runs": []}
    with tempfile.TemporaryDirectory(prefix="emenet-bench-") as tmp:
        predictor = Predictor(_checkpoints(spec["members"], Path(tmp)), backend=spec["backend"],
                              batch_size=spec.get("batch", 64))
        paths = {n: make_looped_video(spec["video"], Path(tmp) / f"looped_{n}.mp4", n) for n in spec["lengths"]}
        # one unmeasured run first: the pipeline threads' allocator arenas and the backend's buffers
        # are a one-off cost of the first video, not a cost that grows with length
        predict_video_to_files(predictor, paths[spec["lengths"][0]], Path(tmp) / "warmup", overwrite=True,
                               progress=False)
        for n, path in paths.items():
            t0 = time.perf_counter()
            result, mem = measure_memory(lambda p=path, n=n: predict_video_to_files(
                predictor, p, Path(tmp) / f"out_{n}", overwrite=True, progress=False))
            seconds = time.perf_counter() - t0
            out["runs"].append({"num_frames": result.prediction.num_frames, "seconds": seconds,
                                "frames_per_s": result.prediction.num_frames / seconds, **mem})
        predictor.close()
    first, last = out["runs"][0], out["runs"][-1]
    out["peak_growth_mb"] = last["peak_rss_mb"] - first["peak_rss_mb"]
    out["length_ratio"] = last["num_frames"] / first["num_frames"]
    return out


# ------------------------------------------------------------------------------ training

def _teacher_batch(clips: int, seq_len: int, rng: np.random.Generator) -> dict:
    batch = {}
    for task in ("EXPR", "AU", "VA"):
        frames = torch.from_numpy(rng.integers(0, 256, (clips, seq_len, 3, INPUT_SIZE, INPUT_SIZE), dtype=np.uint8))
        if task == "EXPR":
            labels = rng.integers(0, 7, (clips, seq_len, 1)).astype(np.float32)
        elif task == "AU":
            labels = rng.integers(0, 2, (clips, seq_len, 12)).astype(np.float32)
        else:
            labels = rng.uniform(-1, 1, (clips, seq_len, 2)).astype(np.float32)
        batch[task] = {"frames": frames, "labels": torch.from_numpy(labels),
                       "mask": torch.ones(labels.shape, dtype=torch.bool)}
    return batch


def _student_batch(clips: int, seq_len: int, rng: np.random.Generator) -> tuple[dict, object]:
    from emenet.data.soft_labels import DISTILL_KEY, SoftLabelLayout
    layout = SoftLabelLayout(("AU", "EXPR", "VA"))
    labels = np.full((clips, seq_len, layout.width), -1.0, np.float32)  # ground-truth columns unannotated
    soft = layout.soft
    labels[..., soft["AU"]] = rng.uniform(0.01, 0.99, (clips, seq_len, 12))
    expr = rng.dirichlet(np.ones(7), (clips, seq_len))
    labels[..., soft["EXPR"]] = expr
    labels[..., soft["VA"]] = rng.dirichlet(np.ones(20), (clips, seq_len, 2)).reshape(clips, seq_len, 40)
    mask = np.ones(labels.shape, bool)
    frames = torch.from_numpy(rng.integers(0, 256, (clips, seq_len, 3, INPUT_SIZE, INPUT_SIZE), dtype=np.uint8))
    return {DISTILL_KEY: {"frames": frames, "labels": torch.from_numpy(labels), "mask": torch.from_numpy(mask)}}, layout


def _trainer(spec: dict):
    """(trainer, batch, generator) of a teacher or student step with the spec's speed settings."""
    from emenet.data.augment import AugmentConfig
    from emenet.fast.training import TrainSpeed
    from emenet.training.objectives import StudentObjective, TaskWeights, TeacherObjective
    from emenet.training.trainer import Trainer
    rng = np.random.default_rng(0)
    device = torch.device(spec.get("device", "cpu"))
    model = _models(1)[0].train().to(device)
    teacher = TeacherObjective()
    if spec["role"] == "teacher":
        batch = _teacher_batch(spec["clips"], spec["seq_len"], rng)
        objective = teacher
    else:
        batch, layout = _student_batch(spec["clips"], spec["seq_len"], rng)
        objective = StudentObjective(layout, supervised=teacher)
    options = dict(spec.get("options") or {})  # {"bf16": ..., "compile": ...}: the CLI's fast step with these flags
    model.backbone.checkpoint_activations = options.pop("activation_checkpointing", False)
    if spec["speed"] == BASELINE:
        speed = TrainSpeed()
    else:
        speed = TrainSpeed.from_options("fast", device, **options) if options else TrainSpeed.recommended(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    trainer = Trainer(model, objective, optimizer, torch.optim.lr_scheduler.StepLR(optimizer, 10), False,
                      None, lambda m: {}, TaskWeights({t: 1.0 for t in model.tasks}), AugmentConfig(),
                      batch_size=spec["clips"], nepochs=1, seed=0, device=device, speed=speed,
                      progress=False)
    return trainer, batch, torch.Generator().manual_seed(0)


def train_step(spec: dict) -> dict:
    """Seconds per optimisation step of the trainer (teacher or student), data already in memory."""
    trainer, batch, gen = _trainer(spec)
    speed = trainer.speed
    frames = sum(b["frames"].shape[0] * b["frames"].shape[1] for b in batch.values())
    first: list[float] = []  # the first step's seconds: with compile, the compilation's

    def steps():
        warmup = spec["warmup"]
        if warmup:
            start = time.perf_counter()
            trainer.train_step(batch, gen)
            first.append(time.perf_counter() - start)
        timing = time_calls(lambda: trainer.train_step(batch, gen), max(0, warmup - 1), spec["repeat"],
                            spec.get("budget_s"))
        timing.warmup = warmup
        return timing
    timing, mem = measure_memory(steps)
    settings = {**speed.to_dict(), "activation_checkpointing": trainer.model.backbone.checkpoint_activations,
                **{f"env {k}={v}": True for k, v in spec.get("env", {}).items()}}
    return {"role": spec["role"], "speed": spec["speed"], "settings": settings, "clips": sum(
        b["frames"].shape[0] for b in batch.values()), "seq_len": spec["seq_len"], **timing.to_dict(frames), **mem,
        "first_step_s": first[0] if first else None}


def loader(spec: dict) -> dict:
    """Frames/s of the training data loader alone (JPEG decoding, clip assembly, collation)."""
    from torch.utils.data import DataLoader

    from emenet.data.affwild2 import load_affwild2_index
    from emenet.data.datasets import MultiTaskBatchSampler, MultiTaskClipDataset, collate_by_task
    from emenet.data.labeled import labeled_videos
    tasks = ("EXPR", "AU", "VA")
    data_root = spec["data_root"]
    ds = MultiTaskClipDataset(labeled_videos(load_affwild2_index(data_root), "Train_Set", tasks), tasks,
                              spec["seq_len"], 30, INPUT_SIZE)
    out = {"data_root": str(data_root), "clips_per_task": spec["clips"], "seq_len": spec["seq_len"], "runs": []}
    for workers in spec["workers"]:
        loader_ = DataLoader(ds, batch_sampler=MultiTaskBatchSampler(ds.task_ranges, spec["clips"], 0, 1, spec["steps"]),
                             collate_fn=collate_by_task, num_workers=workers)

        def run():
            return sum(b["frames"].shape[0] * b["frames"].shape[1] for batch in loader_ for b in batch.values())
        t0 = time.perf_counter()
        frames, mem = measure_memory(run)
        seconds = time.perf_counter() - t0
        out["runs"].append({"workers": workers, "steps": spec["steps"], "frames": frames, "seconds": seconds,
                            "frames_per_s": frames / seconds, **mem})
    return out


# ------------------------------------------------------------------------------- profiles

def _top_ops(prof, rows: int) -> list[dict]:
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    return [{"op": e.key, "calls": e.count, "self_cpu_ms": e.self_cpu_time_total / 1e3,
             "share": e.self_cpu_time_total / total} for e in events[:rows]]


def profile(spec: dict) -> dict:
    """torch.profiler's top operators (self CPU time) of the fused ensemble's backbones or a fast train step."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    if spec["target"] == "inference":
        # what each fused worker thread runs, here in the profiled thread (the profiler records
        # the thread that starts it): every member over 8-frame channels-last micro-batches
        from emenet.fast.runners import DEFAULT_MICRO_BATCH, FusedRunner
        models = _models(spec["members"])
        runner = FusedRunner(models, torch.device("cpu"), num_workers=1)
        batch = _frames(spec["batch"]).contiguous(memory_format=torch.channels_last)
        torch.set_num_threads(1)

        def fn():
            with torch.inference_mode():
                for backbone in runner.backbones:
                    for chunk in batch.split(DEFAULT_MICRO_BATCH):
                        backbone(chunk)
    else:
        runner = None
        trainer, batch, gen = _trainer(spec)
        frames = sum(b["frames"].shape[0] * b["frames"].shape[1] for b in batch.values())
        fn = lambda: trainer.train_step(batch, gen)  # noqa: E731
    fn()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    if runner is not None:
        runner.close()
    out = {"target": spec["target"], "top_ops": _top_ops(prof, spec.get("rows", 12))}
    if runner is None:
        out["frames"] = frames  # per profiled step: the report's per-op account (report.train_op_account)
    return out


def onnx_profile(spec: dict) -> dict:
    """ONNX Runtime's own profile of the exported backbones (`backend` onnx, the default, or int8: the
    quantized graphs): kernel time per operator type, over one batch per member, each member's
    session on the default thread count."""
    import collections
    import json

    from emenet.fast.onnx_backend import INPUT_NAME, export_backbone
    import onnxruntime as ort
    models = _models(spec["members"])
    frames = _frames(spec["batch"]).numpy()
    if spec.get("backend", "onnx") == "int8":
        from emenet.fast import make_runner
        runner = make_runner("int8", models, "cpu")  # quantized (and gated) once, then read from the cache
        graphs = runner.graphs
        runner.close()
    else:
        graphs = [export_backbone(model.backbone) for model in models]
    per_op: collections.Counter = collections.Counter()
    calls: collections.Counter = collections.Counter()
    with tempfile.TemporaryDirectory(prefix="emenet-bench-") as tmp:
        for i, graph in enumerate(graphs):
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(tmp) / f"member{i}")
            options.log_severity_level = 3
            session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
            session.run(None, {INPUT_NAME: frames})  # warm-up: profiled too, dropped below
            session.run(None, {INPUT_NAME: frames})
            events = [e for e in json.loads(Path(session.end_profiling()).read_text())
                      if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
            for e in events[len(events) // 2:]:  # the second run's kernels
                per_op[e["args"]["op_name"]] += e["dur"]
                calls[e["args"]["op_name"]] += 1
    total = sum(per_op.values()) or 1
    return {"target": "onnx", "top_ops": [{"op": op, "calls": calls[op], "self_cpu_ms": us / 1e3, "share": us / total}
                                          for op, us in per_op.most_common(spec.get("rows", 12))]}


def _onnx_matmul(n: int, integer: bool) -> Callable[[], object] | None:
    """An n x n product in ONNX Runtime on one session of the default threads: MatMul (fp32) or
    MatMulInteger (uint8 x int8 -> int32, the kernels of the int8 backend); None without the extra."""
    from emenet.fast.onnx_backend import make_session, onnx_available
    if not onnx_available():
        return None
    from onnx import TensorProto, helper
    a_type, b_type, y_type = ((TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32) if integer
                              else (TensorProto.FLOAT,) * 3)
    graph = helper.make_graph([helper.make_node("MatMulInteger" if integer else "MatMul", ["A", "B"], ["Y"])], "mm",
                              [helper.make_tensor_value_info("A", a_type, [n, n]),
                               helper.make_tensor_value_info("B", b_type, [n, n])],
                              [helper.make_tensor_value_info("Y", y_type, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    # The backends' own session settings; above all no spinning: idle ORT threads that spin take the
    # cores from the torch products timed next (fp32 torch.mm measured 47 instead of 170 GMAC/s).
    session = make_session(model.SerializeToString(), threads=torch.get_num_threads())
    rng = np.random.default_rng(0)
    if integer:
        feed = {"A": rng.integers(0, 256, (n, n), dtype=np.uint8), "B": rng.integers(-128, 128, (n, n), dtype=np.int8)}
    else:
        feed = {"A": rng.random((n, n), dtype=np.float32), "B": rng.random((n, n), dtype=np.float32)}
    return lambda: session.run(None, feed)


def _matmul_peaks(n: int, warmup: int, repeat: int) -> dict[str, float]:
    """GMAC/s of an n x n product per arithmetic, timed round-robin (one call of each in turn) so
    that every figure sees the same load. fp32 and bf16 are torch.mm (oneDNN: AMX tiles where the
    CPU has them), int8 torch._int_mm; the ONNX Runtime ones are what the onnx and int8 backends use."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(n, n, generator=g), torch.rand(n, n, generator=g)
    a16, b16 = a.bfloat16(), b.bfloat16()
    a8, b8 = (torch.randint(-128, 128, (n, n), dtype=torch.int8, generator=g) for _ in range(2))
    fns: dict[str, Callable[[], object]] = {"fp32": lambda: torch.mm(a, b), "bf16": lambda: torch.mm(a16, b16),
                                            "int8": lambda: torch._int_mm(a8, b8)}
    for name, integer in (("fp32_onnxruntime", False), ("int8_onnxruntime", True)):
        fn = _onnx_matmul(n, integer)
        if fn is not None:
            fns[name] = fn
    seconds: dict[str, list[float]] = {k: [] for k in fns}
    for k in range(warmup + repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            if k >= warmup:
                seconds[name].append(time.perf_counter() - t0)
    return {name: n ** 3 / sorted(s)[len(s) // 2] / 1e9 for name, s in seconds.items()}


def ceiling(spec: dict) -> dict:
    """The machine's compute ceilings, to put the inference numbers in proportion: multiply-adds per
    second of a large matrix product (the most efficient kernel a CPU has, all torch threads) in
    fp32, bf16 and int8 (`peaks_gmac_per_s`; `matmul_gmac_per_s` is fp32 torch.mm), and the
    model's multiply-adds per frame."""
    from emenet.profiling import macs_per_frame
    n = spec.get("n", 1024)
    peaks = _matmul_peaks(n, spec.get("warmup", 2), spec.get("repeat", 10))
    model = _models(1)[0]
    macs = macs_per_frame(model, seq_len=2)
    return {"n": n, "threads": torch.get_num_threads(), "matmul_median_s": n ** 3 / peaks["fp32"] / 1e9,
            "matmul_gmac_per_s": peaks["fp32"], "peaks_gmac_per_s": peaks, "macs_per_frame": macs["total"],
            "backbone_macs_per_frame": macs["backbone"]}


WORKLOADS: dict[str, Callable[[dict], dict]] = {
    "inference": inference, "video": video, "video_stages": video_stages, "detect_align": detect_align,
    "long_video": long_video, "cold_start": cold_start,
    "train_step": train_step, "loader": loader, "profile": profile, "onnx_profile": onnx_profile,
    "ceiling": ceiling,
}
