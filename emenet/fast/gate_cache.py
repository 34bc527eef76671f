"""The accuracy gate's verdicts kept between runs, so an int8 or bf16 ensemble starts without re-running it.

The gate (emenet.fast.runners.check_member_gates) runs each member's eager fp32 model and its
fast backbone over 256 synthetic faces: several seconds per member on a 2-core CPU, most of an
int8/bf16 ensemble's start (28 s for five members in benchmarks/results). Its verdict depends
only on what `gate_key` holds, so it is stored as JSON beside the exported graphs (by default
`~/.cache/emenet/onnx`) and read back when the whole key matches. A file that cannot be read,
is not valid JSON, or was written for another key is ignored with a log line, and the gate
runs again and rewrites it (atomically).

    >>> key = gate_key({"backend": "int8"}, "0" * 64, "1" * 64, 0.99, 0.01)
    >>> gate_file("/tmp/cache", key).name.startswith("gate-")
    True
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from emenet.fast.bf16 import cpu_flags
from emenet.fast.int8 import GateResult
from emenet.io_utils import write_json

log = logging.getLogger(__name__)

GATE_FORMAT = 1  # part of the key: bump whenever int8_gate or check_member_gates changes what a verdict means
# instruction sets that pick different kernels (and so possibly other roundings) in oneDNN and ONNX Runtime
KERNEL_ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16", "avx512_bf16")


def probe_digest(crops: np.ndarray, va: np.ndarray) -> str:
    """SHA-256 of the validation faces and their labels: the probe inputs' exact version."""
    digest = hashlib.sha256()
    for array in (crops, va):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def gate_key(backend: dict, model_sha256: str, probes_sha256: str, min_agreement: float,
             max_ccc_drop: float) -> dict:
    """Everything a member's verdict depends on, as a JSON-able dict with its own `digest`.

    `backend` says what computes the fast features (the runner's `gate_identity()`: its name
    and, for int8, the quantized graph's hash and the ONNX Runtime version); `model_sha256` is
    the member's whole state (backbone and heads: the gate decodes its logits).
    """
    key = {"format": GATE_FORMAT, "backend": backend, "model_sha256": model_sha256, "probes_sha256": probes_sha256,
           "min_agreement": float(min_agreement), "max_ccc_drop": float(max_ccc_drop), "torch": torch.__version__,
           "cpu": [f for f in KERNEL_ISA_FLAGS if f in cpu_flags()]}
    key["digest"] = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return key


def gate_file(cache_dir: str | os.PathLike, key: dict) -> Path:
    return Path(cache_dir) / f"gate-{key['digest'][:40]}.json"


def read_verdict(cache_dir: str | os.PathLike, key: dict) -> GateResult | None:
    """The verdict stored for `key`, or None (absent; unreadable, corrupt or mismatched: logged)."""
    path = gate_file(cache_dir, key)
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
        if stored["key"] != key:
            raise ValueError("it was written for other settings")
        r = stored["result"]
        result = GateResult(int(r["num_frames"]), float(r["agreement"]),
                            {str(k): float(v) for k, v in r["ccc_drop"].items()}, float(r["min_agreement"]),
                            float(r["max_ccc_drop"]))
        if result.passed != r["passed"] or (result.min_agreement, result.max_ccc_drop) != (
                key["min_agreement"], key["max_ccc_drop"]):
            raise ValueError("its verdict does not follow from its numbers")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("ignoring the cached accuracy gate verdict %s (%s: %s); running the gate again",
                    path, type(exc).__name__, exc)
        return None
    return result


def write_verdict(cache_dir: str | os.PathLike, key: dict, result: GateResult) -> None:
    """Keep `result` for `key` (atomically); a cache that cannot be written only costs the gate next time."""
    path = gate_file(cache_dir, key)
    try:
        write_json(path, {"key": key, "result": result.to_dict()})
    except OSError as exc:
        log.warning("could not keep the accuracy gate verdict in %s (%s); the next run checks again", path, exc)
