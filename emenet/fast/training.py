"""Training-step speed settings: channels-last, bf16 autocast, torch.compile, a glibc allocator setting.

`TrainSpeed()` (all off) is the plain step. On a CPU shared with other processes, also start
the training process with `OMP_WAIT_POLICY=PASSIVE` in its environment (read once, when torch
loads OpenMP): otherwise every intra-op parallel region of a step spins while the other core
serves another process, and small ops (the GRU's per-step products, batch-norm statistics)
cost milliseconds each; the benchmark measures the step with and without it. `TrainSpeed.recommended(device)` is what the
benchmark measured as fastest: on the CPU channels-last clips and a model in channels-last
(oneDNN's convolutions and batch norm then run without layout reorders) plus
`retain_freed_memory` (below) and `lean_activations` (batch norm + PReLU keep a third fewer
activations for backward: the teacher step's peak memory, emenet.models.bn_prelu); on a GPU
channels-last, bf16 autocast and torch.compile.

Why `retain_freed_memory`: a training step of 6 clips x 30 frames allocates activations of
tens to hundreds of MB each. glibc serves blocks above its mmap threshold (at most 32 MB by
default) with fresh `mmap`s and returns them at `free`, so every step faults in gigabytes
of zeroed pages again: on the benchmark machine more system time than compute. Raising the
mmap and trim thresholds (`mallopt`) keeps freed memory in the heap for the next step. It
is process-wide and keeps the process's resident memory near its peak; it does nothing
where the C library is not glibc.

    >>> speed = TrainSpeed(channels_last=True)
    >>> clips = torch.rand(2, 3, 3, 8, 8)  # (B, T, 3, H, W)
    >>> speed.frames(clips).flatten(0, 1).is_contiguous(memory_format=torch.channels_last)
    True
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from emenet.models.mobilefacenet import ConvBlock

log = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
RETAINED_BLOCK_BYTES = 1 << 30  # blocks up to 1 GiB come from (and go back to) the heap


def retain_freed_memory() -> bool:
    """Keep freed large blocks in the process's heap (glibc `mallopt`); False where unsupported."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        ok = libc.mallopt(_M_MMAP_THRESHOLD, RETAINED_BLOCK_BYTES) == 1
        ok = libc.mallopt(_M_TRIM_THRESHOLD, RETAINED_BLOCK_BYTES) == 1 and ok
    except (OSError, AttributeError):
        return False
    if ok:
        log.info("allocator: freed blocks up to %d MiB stay in the heap", RETAINED_BLOCK_BYTES >> 20)
    return ok


def channels_last_clips(frames: torch.Tensor) -> torch.Tensor:
    """(B, T, 3, H, W) clips laid out so that `flatten(0, 1)` is a channels-last (B*T, 3, H, W) view."""
    return frames.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)


@dataclass(frozen=True)
class TrainSpeed:
    """How the training step runs; every setting leaves the losses the same up to rounding (bf16: to bf16's)."""

    channels_last: bool = False
    bf16: bool = False  # autocast the forward to bfloat16 (GPU; CPUs without bf16 units get slower)
    compile: bool = False  # torch.compile the model's forward (the module itself, and its checkpoints, stay as is)
    retain_freed_memory: bool = False  # see the module docstring
    lean_activations: bool = False  # batch norm + PReLU keep only the convolution's output (emenet.models.bn_prelu)

    @classmethod
    def recommended(cls, device: torch.device | str) -> "TrainSpeed":
        if torch.device(device).type == "cuda":
            return cls(channels_last=True, bf16=True, compile=True)
        return cls(channels_last=True, retain_freed_memory=True, lean_activations=True)

    @classmethod
    def from_options(cls, speed: str, device: torch.device | str, bf16: bool = False, compile: bool = False
                     ) -> "TrainSpeed":
        """The training CLI's choice: `speed` "fast" (channels-last; on the CPU also retained
        allocator memory and lean activations) or "plain" (everything off), with bf16 autocast and
        compile on request."""
        if speed not in ("fast", "plain"):
            raise ValueError(f"unknown training speed {speed!r}: fast or plain")
        fast = speed == "fast"
        on_cpu = fast and torch.device(device).type == "cpu"
        return cls(channels_last=fast, bf16=bf16, compile=compile, retain_freed_memory=on_cpu,
                   lean_activations=on_cpu)

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)

    def prepare(self, model: nn.Module) -> Callable[..., object]:
        """Apply the settings to `model` (in place: memory format) and return the forward to call."""
        if self.retain_freed_memory:
            retain_freed_memory()
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        for block in model.modules():
            if isinstance(block, ConvBlock):
                block.lean_activations = self.lean_activations
        return torch.compile(model) if self.compile else model

    def frames(self, frames: torch.Tensor) -> torch.Tensor:
        return channels_last_clips(frames) if self.channels_last else frames

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
