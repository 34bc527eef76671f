"""The benchmark suite: every speed figure of issue 6 in one run, against a plain baseline measured alongside.

    emenet bench                      # full suite -> benchmarks/results/<machine>.md and .json
    emenet bench --quick --out_dir /tmp/bench   # a smoke run on tiny settings (seconds, not numbers)

Each measurement runs in its own Python process (peak memory, allocator and thread state
are its own) unless `in_process`; results are saved after each one to a partial file, so an
interrupted run continues where it stopped when started again with the same settings.
The report gives every figure with its baseline, the ratio between them (both measured in
the same run, so the ratio survives a loaded machine better than either number), the load
average around each measurement, and whether each target of the issue is met.
"""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from tqdm.auto import tqdm

from emenet.bench.child import RESULT_MARKER, run_spec
from emenet.bench.measure import library_versions, load_average, machine_info, machine_slug, timing_method
from emenet.bench.report import (FOLLOW, FOLLOW_EVERY, TRAIN_FLAGS, VIDEO_BACKENDS, evaluate_targets,
                                 render_markdown)
from emenet.errors import EMENetInputError
from emenet.fast.bf16 import bf16_unavailable_reason
from emenet.io_utils import atomic_path, write_json

log = logging.getLogger(__name__)

BASELINE = "baseline"
PASSIVE = "fast_passive"  # the fast step with OMP_WAIT_POLICY=PASSIVE in its process's environment
SECTIONS = ("inference", "video", "train", "profile")
DEFAULT_VIDEO = Path("../shared/data/utterance_1.mp4")


@dataclass(frozen=True)
class SuiteConfig:
    """What to measure and how often; `quick()` gives the smoke-test settings."""

    out_dir: Path = Path("benchmarks/results")
    name: str | None = None  # results file stem; default: the machine's slug
    members: int = 5  # ensemble size
    batch: int = 64  # frames per batched call
    stream_frames: int = 16  # frames per streaming measurement (one per call)
    warmup: int = 1
    repeat: int = 3
    budget_s: float = 60.0  # fewer timed calls once a measurement has taken this long
    # fast paths of one model and of the ensemble; bf16 only where the CPU has native bf16 (see `plan`)
    backends: tuple[str, ...] = ("fused", "compile", "onnx", "int8", "bf16")
    ensemble_backends: tuple[str, ...] = ("fused", "onnx", "int8", "bf16")
    video: Path | None = DEFAULT_VIDEO
    video_frames: int | None = None  # cut the video to its first N frames (quick runs)
    video_repeat: int = 1
    # short and long video of the memory check; the short one holds more 64-frame chunks than the pipeline keeps
    # in flight (emenet.video.predict.chunks_in_flight: 7), or its peak misses the full queues' frames
    long_video_frames: tuple[int, int] = (512, 2048)
    data_root: Path | None = None  # training data for the loader; default: a small synthetic set
    train_clips: int = 2  # clips per task (the original's batch_size)
    seq_len: int = 30
    train_warmup: int = 1
    train_repeat: int = 3
    loader_steps: int = 20
    loader_workers: tuple[int, ...] = (0, 1)
    skip: tuple[str, ...] = ()
    in_process: bool = False
    overwrite: bool = False
    quick_mode: bool = False

    @classmethod
    def quick(cls, **overrides) -> "SuiteConfig":
        base = cls(members=2, batch=8, stream_frames=2, warmup=0, repeat=1, backends=("fused",),
                   ensemble_backends=("fused",), video_frames=8, long_video_frames=(8, 16), train_clips=1, seq_len=2,
                   train_warmup=0, train_repeat=1, loader_steps=2, loader_workers=(0,), in_process=True,
                   quick_mode=True)
        return replace(base, **overrides)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


@dataclass
class Measurement:
    id: str
    section: str
    spec: dict
    label: str = ""


def _train_flag_rows() -> list[str]:
    """The training rows with `--compile` / `--bf16` this machine can run: compile needs a C++
    compiler (a minute per process to compile), bf16 the CPU's bf16 units (emulated, it is slower)."""
    from emenet.fast.runners import compiler_available
    no_compiler, no_bf16 = compiler_available() is not None, bf16_unavailable_reason("cpu") is not None
    return [name for name, flags in TRAIN_FLAGS.items()
            if not (flags.get("compile") and no_compiler) and not (flags.get("bf16") and no_bf16)]


def plan(config: SuiteConfig, video: Path | None, data_root: Path | None) -> list[Measurement]:
    """Every measurement of a run, baseline first in each group."""
    c = config
    out: list[Measurement] = []
    if "inference" not in c.skip:
        for members, backends in ((1, c.backends), (c.members, c.ensemble_backends)):
            for backend in (BASELINE, *backends):
                if backend == "bf16" and bf16_unavailable_reason("cpu"):
                    continue  # emulated bf16 is slower than fp32: nothing worth a row
                spec = {"kind": "inference", "members": members, "backend": backend, "batch": c.batch,
                        "stream_frames": c.stream_frames, "warmup": c.warmup, "repeat": c.repeat,
                        "budget_s": c.budget_s}
                out.append(Measurement(f"inference/{members}/{backend}", "inference", spec))
    if "video" not in c.skip and video is not None:
        out.append(Measurement("video_stages", "video", {"kind": "video_stages", "video": str(video)}))
        # int8/bf16 end to end where the inference rows measure them: they change the numbers, so they are
        # never the default, but the video target may be met with them (--backend int8)
        quantized = tuple(b for b in VIDEO_BACKENDS if b in c.ensemble_backends
                          and not (b == "bf16" and bf16_unavailable_reason("cpu")))
        for members in (1, c.members):
            for backend in (BASELINE, "auto", FOLLOW, *quantized):
                spec = {"kind": "video", "members": members, "backend": "auto" if backend == FOLLOW else backend,
                        "video": str(video), "batch": c.batch, "repeat": c.video_repeat,
                        "detect_every": FOLLOW_EVERY if backend == FOLLOW else 1}
                out.append(Measurement(f"video/{members}/{backend}", "video", spec))
        for members in () if c.quick_mode else (1, c.members):  # fresh processes and exports: minutes
            spec = {"kind": "cold_start", "members": members, "backend": "auto", "video": str(video), "batch": c.batch}
            out.append(Measurement(f"cold_start/{members}", "video", spec))
        if "int8" in quantized and not c.quick_mode:  # first use: export, quantisation and the accuracy gate
            spec = {"kind": "cold_start", "members": c.members, "backend": "int8", "video": str(video),
                    "batch": c.batch}
            out.append(Measurement(f"cold_start/{c.members}/int8", "video", spec))
        spec = {"kind": "long_video", "members": 1, "backend": "auto", "video": str(video),
                "lengths": list(c.long_video_frames), "batch": c.batch}
        out.append(Measurement("long_video", "video", spec))
    train_flags = [] if c.quick_mode or "train" in c.skip else _train_flag_rows()
    if "train" not in c.skip:
        for role in ("teacher", "student"):
            for speed in (BASELINE, "fast", PASSIVE, *train_flags):
                if speed == PASSIVE and c.in_process:
                    continue  # an OpenMP setting is read when the process starts: it needs its own process
                spec = {"kind": "train_step", "role": role, "speed": BASELINE if speed == BASELINE else "fast",
                        "clips": c.train_clips, "seq_len": c.seq_len, "warmup": c.train_warmup, "repeat": c.train_repeat,
                        "budget_s": c.budget_s}
                if speed == PASSIVE:
                    spec["env"] = {"OMP_WAIT_POLICY": "PASSIVE"}
                if speed in TRAIN_FLAGS:
                    spec["options"] = TRAIN_FLAGS[speed]
                out.append(Measurement(f"train/{role}/{speed}", "train", spec))
        if data_root is not None:
            spec = {"kind": "loader", "data_root": str(data_root), "clips": c.train_clips, "seq_len": c.seq_len,
                    "steps": c.loader_steps, "workers": list(c.loader_workers)}
            out.append(Measurement("train/loader", "train", spec))
    if "profile" not in c.skip:
        out.append(Measurement("ceiling", "profile", {"kind": "ceiling", "n": 256 if c.quick_mode else 1024}))
        if "onnx" in c.ensemble_backends or "onnx" in c.backends:
            out.append(Measurement("profile/onnx", "profile", {"kind": "onnx_profile", "members": 1,
                                                                "batch": c.batch}))
        if "int8" in c.ensemble_backends or "int8" in c.backends:  # where int8's time goes besides its Conv
            out.append(Measurement("profile/onnx_int8", "profile", {"kind": "onnx_profile", "members": 1,
                                                                     "batch": c.batch, "backend": "int8"}))
        out.append(Measurement("profile/inference", "profile", {"kind": "profile", "target": "inference",
                                                                 "backend": "fused", "members": c.members,
                                                                 "batch": c.batch}))
        if "train" not in c.skip:
            spec = {"kind": "profile", "target": "train", "role": "teacher", "speed": "fast", "clips": c.train_clips,
                    "seq_len": c.seq_len, "warmup": 0, "repeat": 1}
            out.append(Measurement("profile/train", "profile", spec))
            if "fast_compile" in train_flags:  # what the compiled step still spends its time on
                out.append(Measurement("profile/train_compile", "profile",
                                       {**spec, "options": TRAIN_FLAGS["fast_compile"]}))
    return out


def run_child(spec: dict) -> dict:
    """One measurement in a fresh interpreter (`python -m emenet.bench.child`)."""
    env = {**os.environ, **spec.get("env", {})}
    proc = subprocess.run([sys.executable, "-m", "emenet.bench.child"], input=json.dumps(spec), capture_output=True,
                          text=True, check=False, env=env)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    raise RuntimeError(f"exit status {proc.returncode}: {' | '.join(tail)[:400]}")


def _prepare_inputs(config: SuiteConfig, work: Path) -> tuple[Path | None, Path | None, list[str]]:
    """The video to measure (cut for quick runs) and the loader's data root (a small synthetic set)."""
    notes = []
    video = config.video
    if video is not None and not Path(video).is_file():
        if video != DEFAULT_VIDEO:
            raise EMENetInputError(f"{video}: video not found")
        notes.append(f"video measurements skipped: {video} not found (pass --video)")
        video = None
    if video is not None and config.video_frames:
        from emenet.bench.workloads import make_looped_video
        video = make_looped_video(video, work / f"first_{config.video_frames}.mp4", config.video_frames)
    data_root = config.data_root
    if data_root is None and "train" not in config.skip:
        from emenet.data.synth import generate_synthetic_dataset
        frames = 30 if config.quick_mode else 150
        data_root = generate_synthetic_dataset(work / "synth", num_videos=1 if config.quick_mode else 4,
                                               min_frames=frames, max_frames=frames, two_person_videos=0,
                                               num_test_videos=0, progress=False, num_workers=1).out_dir
    return video, data_root, notes


def output_paths(config: SuiteConfig, info: dict) -> tuple[Path, Path, Path]:
    stem = config.name or machine_slug(info)
    out = Path(config.out_dir)
    return out / f"{stem}.md", out / f"{stem}.json", out / f".{stem}.partial.json"


def run_suite(config: SuiteConfig, progress: bool = True) -> tuple[Path, Path]:
    """Run every measurement of `config`, write the markdown and JSON reports; returns their paths."""
    info = machine_info()
    md_path, json_path, partial_path = output_paths(config, info)
    existing = [str(p) for p in (md_path, json_path) if p.exists()]
    if existing and not config.overwrite:
        raise EMENetInputError(f"{', '.join(existing)} already exist; pass --overwrite to replace them")
    settings = config.to_dict()
    done: dict = {}
    if partial_path.is_file():
        saved = json.loads(partial_path.read_text())
        if saved.get("config") == settings:
            done = {k: v for k, v in saved["results"].items() if "error" not in v}  # failed ones run again
            log.info("resuming: %d measurement(s) already done in %s", len(done), partial_path)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="emenet-bench-") as tmp:
        video, data_root, notes = _prepare_inputs(config, Path(tmp))
        measurements = plan(config, video, data_root)
        for m in tqdm(measurements, desc="benchmarks", unit="measurement", disable=not progress):
            if m.id in done:
                continue
            load_before = load_average()
            t0 = time.perf_counter()
            try:
                result = run_spec(m.spec) if config.in_process else run_child(m.spec)
            except Exception as exc:  # noqa: BLE001 - a failed path is reported, the others still run
                log.warning("%s failed: %s", m.id, exc)
                result = {"error": f"{type(exc).__name__}: {str(exc)[:400]}"}
            result["_meta"] = {"load_before": load_before, "load_after": load_average(),
                               "seconds": time.perf_counter() - t0, "spec": m.spec}
            done[m.id] = result
            log.info("%s done in %.1f s", m.id, result["_meta"]["seconds"])
            write_json(partial_path, {"config": settings, "results": done})
    report = {
        "machine": info, "versions": library_versions(), "config": settings,
        "method": {"timing": timing_method(config.warmup, config.repeat, config.budget_s),
                   "training_timing": timing_method(config.train_warmup, config.train_repeat, config.budget_s),
                   "video_timing": f"{config.video_repeat} run(s) of the whole pipeline, median wall time",
                   "memory": "peak resident memory (VmHWM) of the measuring process, reset before each measurement",
                   "isolation": "one process per measurement" if not config.in_process else "one process for all",
                   "baseline": "eager fp32 model(frames) per member at the same batch; training: the trainer's step "
                               "with every speed setting off",
                   "paired": "x baseline (paired): each fast inference path's process also times the baseline and "
                             "the path alternately, once per repetition, and reports the median of the per-pair "
                             "ratios (both see the same load); the targets use it where measured"},
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "seconds": time.time() - started, "notes": notes, "results": done,
    }
    report["targets"] = evaluate_targets(report)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(json_path, report)
    with atomic_path(md_path) as tmp_md:
        tmp_md.write_text(render_markdown(report))
    partial_path.unlink(missing_ok=True)
    return md_path, json_path


__all__ = ["SuiteConfig", "plan", "run_suite"]
