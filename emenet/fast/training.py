"""Training-step speed settings: channels-last, bf16 autocast, torch.compile, a glibc allocator setting.

`TrainSpeed()` (all off) is the plain step. On a CPU shared with other processes, also start
the training process with `OMP_WAIT_POLICY=PASSIVE` in its environment (read once, when torch
loads OpenMP): otherwise every intra-op parallel region of a step spins while the other core
serves another process, and small ops (the GRU's per-step products, batch-norm statistics)
cost milliseconds each; the benchmark measures the step with and without it. `TrainSpeed.recommended(device)` is what the
benchmark measured as fastest: on the CPU channels-last clips and a model in channels-last
(oneDNN's convolutions and batch norm then run without layout reorders) plus
`retain_freed_memory` (below) and `lean_activations` (batch norm + PReLU keep only the PReLU's
output, which the next convolution keeps anyway: 15 instead of 37 MB of saved activations per
frame, the teacher step's peak memory, emenet.models.bn_prelu); on a GPU
channels-last, bf16 autocast and torch.compile.

`compile` (`--compile`) runs the model's forward through `torch.compile` (inductor), see
`CompiledForward`. On the benchmark's 2-core Xeon it is the fastest fp32 CPU step (idle benchmark,
one process per row: teacher 54 frames/s against 43 for the fast step and 35 for the plain one,
1.6x; student 53 against 41 and 29, 1.9x; timed alternately in one process: 1.24x the fast step for
the teacher, 1.26x for the student), at 2.5-2.8 GB against the plain step's 4.1 GB: inductor
fuses the batch norms, PReLUs and their backward into its own loops and plans what backward
keeps, where eager runs aten's PReLU backward (a third of the fast step; 4x the time of one
multiply over the same tensor, and torch.where/clamp rewrites of it were 1.6-1.9x slower still).
It is still not in `recommended("cpu")` nor the CLI's default: the first step compiles for about
a minute (54 s for the teacher, 10 s once inductor's on-disk cache holds the kernels), which a
step saving about a second repays only after 50-100 steps. The quickstart's short runs and every
test that builds a trainer would pay it and gain nothing; a real Aff-wild2 epoch has thousands of
steps, so add `--compile` there. With compile, lean activations are off: the compiler plans what
backward keeps. bf16 autocast (`--bf16`) is faster again on CPUs with AMX/AVX512-BF16 and halves
the step's memory, but it changes the losses beyond fp32 rounding, so it is offered and never
turned on silently. The default fast teacher step peaks at 3.0 GB resident in the idle benchmark,
2.9-3.2 GB in loaded runs (2 clips x 30 frames per task; it was 3.9-4.1 GB while lean activations kept the convolutions' outputs): one
task's pass holds 0.85 GB of saved activations (1.5 GB before), the process 0.4 GB before the
step, and the rest is backward's temporaries and glibc's heap around them (its arena reaches
about 2.5x the largest live set: freed blocks stay, see `retain_freed_memory`, and they fragment).
`--activation_checkpointing` (emenet.models.activation_checkpoint) brings it to 2.2 GB for about
20% of its speed (idle benchmark: 34 against 43 frames/s), `--compile` to 2.8 GB.

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


def _root_cause(exc: BaseException) -> str:
    """'Type: first line' of the innermost cause (dynamo wraps the compiler's error in its own)."""
    while (inner := exc.__cause__ or getattr(exc, "inner_exception", None)) is not None:
        exc = inner
    first_line = (str(exc).strip().splitlines() or [""])[0][:160]
    return f"{type(exc).__name__}: {first_line}"


COMPILE_MESSAGE = "compiling the training step (first use takes about a minute; cached after)"


class CompiledForward:
    """`model`'s forward through `torch.compile`, with one log line before the first compilation
    and the eager forward wherever compilation is impossible.

    The batch dimension of the clips (and audio windows) is marked dynamic at the first call, so
    a shorter last batch of an epoch, or another task's batch size, reuses the graph instead of
    compiling again (a batch of a single clip is the one exception: torch specialises size 1, so
    it compiles once more). Compilation failures (no working C++ compiler, an unsupported platform or
    operator) end in one warning and the eager forward for the rest of the run, not a traceback:
    dynamo traces with fake tensors before anything runs, so a failed first call has changed
    nothing (batch-norm statistics included) and is simply run again eagerly.
    """

    def __init__(self, model: nn.Module, backend: str | Callable = "inductor"):
        self.model = model
        self.backend = backend
        self.compiled: Callable[..., object] | None = None
        self.failed: str | None = None
        if backend == "inductor":
            from emenet.fast.runners import compiler_available
            self.failed = compiler_available()
        if self.failed:
            log.warning("training without torch.compile: %s", self.failed)

    def __call__(self, frames: torch.Tensor, *args: torch.Tensor, **kwargs: object) -> object:
        if self.failed:
            return self.model(frames, *args, **kwargs)
        for tensor in (frames, *args):
            torch._dynamo.maybe_mark_dynamic(tensor, 0)  # clips per batch; frames per clip stay fixed
        if self.compiled is not None:
            return self.compiled(frames, *args, **kwargs)
        log.info(COMPILE_MESSAGE)
        compiled = torch.compile(self.model, backend=self.backend)
        try:
            out = compiled(frames, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - whatever stops the compiler, eager still trains
            self.failed = f"torch.compile failed ({_root_cause(exc)})"
            log.warning("training without torch.compile: %s", self.failed)
            return self.model(frames, *args, **kwargs)
        self.compiled = compiled
        return out


@dataclass(frozen=True)
class TrainSpeed:
    """How the training step runs; every setting leaves the losses the same up to rounding (bf16: to bf16's)."""

    channels_last: bool = False
    bf16: bool = False  # autocast the forward to bfloat16 (GPU; CPUs without bf16 units get slower)
    compile: bool = False  # torch.compile the model's forward (`CompiledForward`; module and checkpoints stay as is)
    retain_freed_memory: bool = False  # see the module docstring
    lean_activations: bool = False  # batch norm + PReLU keep only the PReLU's output (emenet.models.bn_prelu)

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
        compile on request. Compiled, the fast step leaves lean activations to the compiler: its
        graph partitioner already decides what backward keeps or recomputes, and the fused
        autograd function would only hide the batch norm from it."""
        if speed not in ("fast", "plain"):
            raise ValueError(f"unknown training speed {speed!r}: fast or plain")
        fast = speed == "fast"
        on_cpu = fast and torch.device(device).type == "cpu"
        return cls(channels_last=fast, bf16=bf16, compile=compile, retain_freed_memory=on_cpu,
                   lean_activations=on_cpu and not compile)

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
        return CompiledForward(model) if self.compile else model

    def frames(self, frames: torch.Tensor) -> torch.Tensor:
        return channels_last_clips(frames) if self.channels_last else frames

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
