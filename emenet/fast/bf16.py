"""The backbone in bfloat16 on CPUs with bf16 matrix instructions (AMX-BF16, AVX512-BF16).

On such a CPU oneDNN runs bf16 convolutions on the matrix units: on the Intel Xeon (AMX) of
issue 14 a 1024 x 1024 bf16 product ran 8.6x the fp32 one, and the fused MobileFaceNet in
bf16 about 2.5x the fp32 fused one (one thread, 16 frames). Without the instructions bf16 is
emulated and slower than fp32, so the backend is offered only where the CPU has them.

bf16 keeps 8 bits of mantissa, so the numbers change: a bf16 runner is accepted only when each
member passes the accuracy gate of emenet.fast.int8 (the same bar as int8).

    >>> bf16_unavailable_reason("cuda")
    'runs on the CPU only (use --bf16 autocast on a GPU)'
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from emenet.fast.fold import fused_backbone

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of native bf16 dot products
CPUINFO = Path("/proc/cpuinfo")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of this CPU (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def native_bf16_flags(flags: frozenset[str] | None = None) -> list[str]:
    """Which of BF16_CPU_FLAGS this CPU (or `flags`) has."""
    flags = cpu_flags() if flags is None else flags
    return [f for f in BF16_CPU_FLAGS if f in flags]


def bf16_unavailable_reason(device: torch.device | str, flags: frozenset[str] | None = None) -> str | None:
    """None if the bf16 backend can run fast on `device` here, else one line saying why not."""
    if torch.device(device).type != "cpu":
        return "runs on the CPU only (use --bf16 autocast on a GPU)"
    if not native_bf16_flags(flags):
        return f"this CPU has no native bf16 instructions ({' or '.join(BF16_CPU_FLAGS)}); use --backend onnx"
    if not torch.backends.mkldnn.is_available() or not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "this torch build has no oneDNN bf16 kernels; use --backend onnx"
    return None


def bf16_backbone(backbone: nn.Module, device: torch.device) -> nn.Module:
    """The BN-folded, channels-last backbone with bf16 weights: feed it bf16 channels-last frames."""
    return fused_backbone(backbone, device).to(torch.bfloat16)
