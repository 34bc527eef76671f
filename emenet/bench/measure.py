"""Timing, peak memory and machine facts for the benchmark suite.

Time: `time.perf_counter` around each call after warm-up calls; we keep every repetition
and report the median (robust to another process taking the CPU for a moment), and the
process CPU time per call (`resource.getrusage`, all threads), which a shared machine
disturbs less than wall time.

Peak memory: the kernel's high-water mark of resident memory (`VmHWM` in /proc/self/status),
reset before each measurement by writing 5 to /proc/self/clear_refs (Linux), so each figure
is the peak of that measurement alone (it includes what the process already held: torch,
the models). Where the reset is refused, `ru_maxrss` (peak since the process started) is
reported instead and the result says so.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
VERSION_PACKAGES = ("emenet", "torch", "numpy", "onnxruntime", "onnx", "onnxscript", "av", "opencv-python-headless",
                    "pandas")


@dataclass
class Timing:
    """Per-call wall and CPU seconds of the repetitions (warm-up calls excluded)."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    warmup: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu)

    def to_dict(self, frames_per_call: int) -> dict:
        return {"frames_per_call": frames_per_call, "repeat": len(self.wall), "warmup": self.warmup,
                "median_s": self.median, "wall_s": self.wall, "cpu_s": self.cpu,
                "frames_per_s": frames_per_call / self.median,
                "cpu_s_per_frame": self.cpu_median / frames_per_call}


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def time_calls(fn: Callable[[], object], warmup: int, repeat: int, budget_s: float | None = None) -> Timing:
    """Call `fn` `warmup` times untimed, then `repeat` times timed; with `budget_s`, stop the timed
    calls once they have taken that long in all (at least one is always made)."""
    for _ in range(warmup):
        fn()
    timing = Timing(warmup=warmup)
    for _ in range(max(1, repeat)):
        c0, t0 = _cpu_seconds(), time.perf_counter()
        fn()
        timing.wall.append(time.perf_counter() - t0)
        timing.cpu.append(_cpu_seconds() - c0)
        if budget_s is not None and sum(timing.wall) >= budget_s:
            break
    return timing


def paired_speedup(baseline: Callable[[], object], fast: Callable[[], object], repeat: int,
                   budget_s: float | None = None) -> dict:
    """The speed-up of `fast` over `baseline`, timed alternately (baseline, fast, baseline, ...)
    in one process, so that both see the same load: the median of the per-pair ratios
    baseline time / fast time. Both are assumed warm."""
    ratios, spent = [], 0.0
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        baseline()
        t1 = time.perf_counter()
        fast()
        t2 = time.perf_counter()
        ratios.append((t1 - t0) / (t2 - t1))
        spent += t2 - t0
        if budget_s is not None and spent >= budget_s:
            break
    return {"pairs": len(ratios), "ratios": ratios, "median": statistics.median(ratios)}


def _status_mb(key: str) -> float | None:
    try:
        match = re.search(rf"^{key}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) / 1024 if match else None


def reset_peak_rss() -> bool:
    """Reset the resident-memory high-water mark (Linux); False where refused."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


@dataclass(frozen=True)
class Memory:
    peak_rss_mb: float
    method: str  # "VmHWM since reset" or "ru_maxrss since process start"


def peak_rss(reset_ok: bool) -> Memory:
    hwm = _status_mb("VmHWM")
    if reset_ok and hwm is not None:
        return Memory(hwm, "VmHWM since reset")
    return Memory(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "ru_maxrss since process start")


def measure_memory(fn: Callable[[], object]) -> tuple[object, dict]:
    """Run `fn` once between a peak reset and a peak reading: (its result, {"peak_rss_mb", "memory_method"})."""
    ok = reset_peak_rss()
    out = fn()
    mem = peak_rss(ok)
    return out, {"peak_rss_mb": mem.peak_rss_mb, "memory_method": mem.method}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set(re.search(r"^flags\s*:(.*)$", text, re.MULTILINE).group(1).split()) if "flags" in text else set()
    return sorted(f for f in flags if f in {"avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_bf16",
                                            "avx512_bf16"})


def machine_info() -> dict:
    """CPU, cores, memory, GPU and thread settings of this machine."""
    mem_total = None
    try:
        match = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.MULTILINE)
        mem_total = round(int(match.group(1)) / 1024 ** 2, 1) if match else None
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": _cpu_model(), "cpu_flags": _cpu_flags(), "logical_cpus": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "memory_gib": mem_total, "gpu": gpu, "platform": platform.platform(), "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(), "torch_interop_threads": torch.get_num_interop_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}


def machine_slug(info: dict) -> str:
    """A file name for this machine's results, e.g. `amd-epyc-2cpu` or `...-nvidia-h100`."""
    words = re.sub(r"\(.*?\)|processor|\d+-core|cpu @.*", " ", info["cpu"].lower())
    slug = "-".join(re.findall(r"[a-z0-9]+", words)[:4]) or "cpu"
    slug += f"-{info['usable_cpus']}cpu"
    if info.get("gpu"):
        slug += "-" + "-".join(re.findall(r"[a-z0-9]+", info["gpu"].lower())[:3])
    return slug


def library_versions() -> dict[str, str | None]:
    out = {}
    for name in VERSION_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["torch_build"] = torch.__version__
    out["onednn"] = torch.backends.mkldnn.is_available()
    return out


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def timing_method(warmup: int, repeat: int, budget_s: float | None = None) -> str:
    budget = f" (fewer once they have taken {budget_s:g} s)" if budget_s else ""
    return (f"{warmup} untimed warm-up call(s), then {repeat} timed call(s){budget}; median wall time per call "
            f"(time.perf_counter) and median process CPU time (getrusage, all threads)")
