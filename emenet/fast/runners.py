"""Backbone runners: one loaded model or ensemble, frames in, every member's per-frame features out.

A runner computes what costs: the MobileFaceNet features of every member (99.7% of the
multiply-adds). The GRU heads stay in torch for every backend (`EMENet.forward_features`),
so streaming with a hidden state is one code path and each backend only has to match the
eager backbone. Members share the decoded, normalised batch: it is converted once and each
member's backbone runs over the same tensor.

| backend | what runs | where |
|---|---|---|
| `eager` | the model as trained, whole batch per member (the plain baseline; EMENet-VA too) | any device |
| `fused` | BN folded into the convolutions, channels-last, inference mode; on the CPU micro-batches of 8 frames on a `WorkerPool` (members and micro-batches concurrently) | any device |
| `compile` | `fused` through `torch.compile` (inductor, frozen weights); compiles once per process and shape (tens of seconds) | any device with a compiler |
| `onnx` | the fused backbone exported to ONNX (PReLU as depthwise convolutions, emenet.fast.prelu), run by ONNX Runtime (`pip install 'emenet[onnx]'`); exported graphs are cached | CPU |
| `int8` | that ONNX graph statically quantized to int8, accepted only if it passes the accuracy gate of emenet.fast.int8 | CPU |
| `bf16` | `fused` with bf16 weights and activations (oneDNN on AMX/AVX512-BF16, emenet.fast.bf16), accepted only if it passes the same gate | CPU with native bf16 |

`auto` (`resolve_backend`) picks `onnx` on the CPU where the extra is installed and `fused`
elsewhere, for EMENet-V and EMENet-VA members (whose audio branch runs eagerly). On the 2-core CPU
of benchmarks/results `onnx` was the fastest fp32 path (the first use of a checkpoint exports
it, about 10 s per model; later ones read the cache). `int8` is faster still but changes the
numbers (within its gate, measured on synthetic faces), so it is never picked for the user:
ask for it by name. The same holds for `bf16`: on a CPU with AMX it matches int8 on batches without
quantizing, but one frame per call (streaming) is slower than onnx there (issue 14).

    >>> import emenet
    >>> model = emenet.create_model("emenet_v").eval()
    >>> runner = make_runner("fused", [model], torch.device("cpu"))
    >>> [f.shape for f in runner.encode(torch.rand(3, 3, 112, 112))]
    [torch.Size([3, 512])]
    >>> runner.close()
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from emenet.errors import EMENetInputError
from emenet.fast.fold import fused_backbone
from emenet.fast.pool import WorkerPool
from emenet.models.emenet import EMENet

log = logging.getLogger(__name__)

BACKENDS = ("eager", "fused", "compile", "onnx", "int8", "bf16")
AUTO = "auto"
DEFAULT_MICRO_BATCH = 8  # frames per CPU forward: activations stay in cache (see emenet.fast.pool)


class Runner:
    """Per-member backbone features of a batch of frames. Subclasses implement `_encode`."""

    name = "base"

    def __init__(self, models: Sequence[EMENet], device: torch.device):
        self.models = list(models)
        self.device = torch.device(device)
        self.setup_seconds = 0.0  # export/compile/quantize time spent building the runner

    def encode(self, frames: torch.Tensor, audio: torch.Tensor | None = None) -> list[torch.Tensor]:
        """frames (N, 3, 112, 112) float RGB in [0, 1] on the device; audio (N, window) for EMENet-VA
        members, else None -> one (N, F) feature tensor per member, on the device."""
        if frames.ndim != 4:
            raise ValueError(f"expected frames of shape (N, 3, H, W), got {tuple(frames.shape)}")
        with torch.inference_mode():
            return self._encode(frames, audio)

    def _encode(self, frames: torch.Tensor, audio: torch.Tensor | None) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward(self, frames: torch.Tensor, audio: torch.Tensor | None = None, hidden: Sequence | None = None
                ) -> list[tuple[dict[str, torch.Tensor], dict]]:
        """Every member's (logits, new hidden) for N frames: backbones (`encode`) then the GRU heads.

        With `hidden` (one entry per member, None to start), the frames are one sequence
        continuing it: logits (1, N, C). Without, each frame is a sequence of its own with no
        state: logits (N, 1, C). Pooled runners run each member's heads on a worker thread too,
        so no small op of the hot path waits at an intra-op thread barrier.
        """
        features = self.encode(frames, audio)

        def heads(i: int) -> tuple[dict[str, torch.Tensor], dict]:
            model = self.models[i]
            if hidden is None:
                return model.forward_features(features[i][:, None])  # (N, 1, ...)
            return model.forward_features(features[i][None], hidden[i])  # (1, N, ...)
        return self._map(heads, range(len(self.models)))

    def _map(self, fn, items) -> list:
        with torch.inference_mode():
            return [fn(item) for item in items]

    def gate_identity(self, member: int) -> dict:
        """What computes `member`'s features, for the accuracy gate's cache key (emenet.fast.gate_cache):
        the backend's name here; backends whose numbers depend on more (a quantized graph) add it."""
        return {"backend": self.name}

    def close(self) -> None:
        """Release worker threads (the runner cannot be used afterwards)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.models)} model(s), device={str(self.device)!r})"


class EagerRunner(Runner):
    """The model as trained: each member's backbone over the whole batch (EMENet-VA: with its audio)."""

    name = "eager"

    def _encode(self, frames: torch.Tensor, audio: torch.Tensor | None) -> list[torch.Tensor]:
        sound = None if audio is None else audio[None]  # (1, N, window)
        return [model.encode(frames[None], sound)[0] for model in self.models]  # (N, 512), or (N, 640) with audio


class PooledRunner(Runner):
    """Micro-batches x members on a WorkerPool on the CPU; whole batches on an accelerator.

    Subclasses speed up the MobileFaceNet (`_forward`). An EMENet-VA member's audio branch
    (MarbleNet, 3% of its multiply-adds) runs eagerly over all of the call's windows at once
    and its features are appended to the fast visual ones, as `EMENetVA.encode` does.
    """

    def __init__(self, models: Sequence[EMENet], device: torch.device, micro_batch: int = DEFAULT_MICRO_BATCH,
                 num_workers: int | None = None):
        super().__init__(models, device)
        if micro_batch < 1:
            raise EMENetInputError(f"micro_batch must be at least 1, got {micro_batch}")
        self.micro_batch = micro_batch
        self.pool = WorkerPool(num_workers) if self.device.type == "cpu" else None

    def _forward(self, member: int, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _encode(self, frames: torch.Tensor, audio: torch.Tensor | None) -> list[torch.Tensor]:
        visual = self._encode_frames(frames)
        out = []
        for model, features in zip(self.models, visual):
            if model.uses_audio:
                if audio is None:
                    raise EMENetInputError("an EMENet-VA model needs the audio window of every frame")
                features = torch.cat([features, model.encode_audio(audio[None])[0]], dim=-1)  # (N, 512 + 128)
            out.append(features)
        return out

    def _encode_frames(self, frames: torch.Tensor) -> list[torch.Tensor]:
        members = range(len(self.models))
        if self.pool is None:
            return [self._forward(i, frames) for i in members]
        chunks = frames.split(self.micro_batch)
        if not chunks:  # no frames: nothing worth a thread
            return [self._forward(i, frames) for i in members]
        jobs = [(i, c) for i in members for c in chunks]  # every member shares the same frames
        outs = self.pool.map(lambda job: self._forward(*job), jobs)
        k = len(chunks)
        return [torch.cat(outs[i * k:(i + 1) * k]) if k > 1 else outs[i * k] for i in members]

    def _map(self, fn, items) -> list:
        return super()._map(fn, items) if self.pool is None else self.pool.map(fn, list(items))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None


class FusedRunner(PooledRunner):
    """BN-folded, channels-last backbones in inference mode."""

    name = "fused"

    def __init__(self, models: Sequence[EMENet], device: torch.device, micro_batch: int = DEFAULT_MICRO_BATCH,
                 num_workers: int | None = None):
        super().__init__(models, device, micro_batch, num_workers)
        start = time.perf_counter()
        self.backbones: list[nn.Module] = [fused_backbone(m.backbone, self.device) for m in self.models]
        self.setup_seconds = time.perf_counter() - start

    def _forward(self, member: int, frames: torch.Tensor) -> torch.Tensor:
        return self.backbones[member](frames.contiguous(memory_format=torch.channels_last))


def compiler_available() -> str | None:
    """None if torch.compile can build CPU kernels here, else why not."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
        get_cpp_compiler()
    except Exception as exc:  # noqa: BLE001 - any failure means: no compiler
        return f"torch.compile has no C++ compiler here ({type(exc).__name__}: {str(exc)[:120]})"
    return None


class CompiledRunner(FusedRunner):
    """`torch.compile` (inductor, frozen weights) of the fused backbones.

    On the CPU every forward has the shape (micro_batch, ...) or (1, ...): a shorter tail is
    padded with zeros (frames are independent in eval mode), so at most two graphs compile.
    The first compilation happens here, so `setup_seconds` holds the compile time.
    """

    name = "compile"

    def __init__(self, models: Sequence[EMENet], device: torch.device, micro_batch: int = DEFAULT_MICRO_BATCH,
                 num_workers: int | None = None):
        reason = compiler_available()
        if reason:
            raise EMENetInputError(f"the compile backend is unavailable: {reason}; use --backend fused")
        super().__init__(models, device, micro_batch, num_workers)
        start = time.perf_counter()
        dynamic = None if self.device.type != "cpu" else False
        self.compiled = [torch.compile(b, dynamic=dynamic, options={"freezing": True}) for b in self.backbones]
        warm = torch.zeros(micro_batch if self.pool is not None else 2, 3, 112, 112, device=self.device)
        self.encode(warm)
        self.setup_seconds += time.perf_counter() - start

    def _forward(self, member: int, frames: torch.Tensor) -> torch.Tensor:
        n = len(frames)
        if self.pool is None or n in (1, self.micro_batch):
            return self.compiled[member](frames.contiguous(memory_format=torch.channels_last))
        padded = frames.new_zeros((self.micro_batch, *frames.shape[1:]))
        padded[:n] = frames
        return self.compiled[member](padded.contiguous(memory_format=torch.channels_last))[:n]


class OnnxRunner(PooledRunner):
    """Each member's fused backbone exported to ONNX and run by ONNX Runtime on the CPU."""

    name = "onnx"

    def __init__(self, models: Sequence[EMENet], device: torch.device, micro_batch: int = DEFAULT_MICRO_BATCH,
                 num_workers: int | None = None, cache_exports: bool = True, cache_dir: str | os.PathLike | None = None):
        from emenet.fast.onnx_backend import default_export_cache, require_onnx
        require_onnx()
        # exported graphs are kept between runs (emenet.fast.onnx_backend.cached_export), by default
        # in ~/.cache/emenet/onnx; cache_exports=False exports every time
        self.cache_dir = (cache_dir or default_export_cache()) if cache_exports else None
        if torch.device(device).type != "cpu":
            raise EMENetInputError(f"the {self.name} backend runs on the CPU; use --backend fused on {device}")
        super().__init__(models, device, micro_batch, num_workers)
        start = time.perf_counter()
        self.graphs = self._graphs()
        self.sessions = [self._session(g) for g in self.graphs]
        self.setup_seconds = time.perf_counter() - start

    def _graphs(self) -> list[bytes]:
        from emenet.fast.onnx_backend import cached_export
        return [cached_export(m.backbone, self.cache_dir) for m in self.models]

    @staticmethod
    def _session(graph: bytes):
        from emenet.fast.onnx_backend import make_session
        return make_session(graph, threads=1)

    def _forward(self, member: int, frames: torch.Tensor) -> torch.Tensor:
        from emenet.fast.onnx_backend import run_session
        return run_session(self.sessions[member], frames)


class Int8Runner(OnnxRunner):
    """Statically quantized int8 backbones; each member must pass the accuracy gate (emenet.fast.int8).

    Calibration (MinMax activation ranges) and validation use synthetic faces of different
    seeds, unless `calibration` frames are given; a member that fails the gate raises
    EMENetInputError naming the numbers. `gates` keeps every member's result.
    """

    name = "int8"

    def __init__(self, models: Sequence[EMENet], device: torch.device, micro_batch: int = DEFAULT_MICRO_BATCH,
                 num_workers: int | None = None, calibration: np.ndarray | None = None, calibration_frames: int = 64,
                 validation_frames: int = 256, cache_exports: bool = True, cache_dir: str | os.PathLike | None = None):
        if any(m.uses_audio for m in models):
            raise EMENetInputError("the int8 backend's accuracy gate is for EMENet-V; use --backend onnx for EMENet-VA")
        self.calibration = calibration  # (N, 3, 112, 112) float32 frames; None: synthetic faces
        self.calibration_frames = calibration_frames
        self.validation_frames = validation_frames
        self.gates = []
        super().__init__(models, device, micro_batch, num_workers, cache_exports, cache_dir)
        start = time.perf_counter()
        self._check_gates()
        self.setup_seconds += time.perf_counter() - start

    def _graphs(self) -> list[bytes]:
        from emenet.data.synth_validation import synthetic_faces
        from emenet.fast.int8 import CALIBRATION_SEED
        from emenet.fast.onnx_backend import backbone_key, cached_export, cached_graph, quantize_backbone
        calibration = self.calibration
        if calibration is None:
            calibration = synthetic_faces(self.calibration_frames, CALIBRATION_SEED).float_frames().numpy()
        # quantized with our own synthetic calibration: cached like the fp32 export; with the
        # caller's frames: built each time (the gate below runs every time either way)
        cache = self.cache_dir if self.calibration is None else None
        graphs = []
        for m in self.models:
            name = f"backbone-int8-{backbone_key(m.backbone)[:40]}-{self.calibration_frames}-{CALIBRATION_SEED}.onnx"
            graphs.append(cached_graph(cache, name, lambda m=m: quantize_backbone(
                cached_export(m.backbone, self.cache_dir), calibration)))
        return graphs

    def _check_gates(self) -> None:
        self.gates = check_member_gates(self, self.validation_frames, "int8 quantization", self.cache_dir)

    def gate_identity(self, member: int) -> dict:
        """The quantized graph decides the features: its hash, with the runtime that runs it."""
        import onnxruntime
        return {"backend": self.name, "onnxruntime": onnxruntime.__version__,
                "graph_sha256": hashlib.sha256(self.graphs[member]).hexdigest()}


def check_member_gates(runner: Runner, validation_frames: int, what: str,
                       cache_dir: str | os.PathLike | None = None, min_agreement: float | None = None,
                       max_ccc_drop: float | None = None) -> list:
    """Every member of `runner` through the accuracy gate of emenet.fast.int8, against its eager fp32
    self on synthetic validation faces; the first member that fails closes the runner and raises
    EMENetInputError naming `what` ("int8 quantization") and the numbers. -> the GateResults.

    With `cache_dir`, each member's verdict is kept there (emenet.fast.gate_cache) under a key of
    its weights, `runner.gate_identity()`, the probe faces and the tolerances; a later run with
    the same key reuses it instead of running the eager reference again (one log line says so).
    Tolerances default to INT8_MIN_AGREEMENT and INT8_MAX_CCC_DROP.
    """
    from emenet.data.synth_validation import synthetic_faces
    from emenet.fast import gate_cache
    from emenet.fast.int8 import INT8_MAX_CCC_DROP, INT8_MIN_AGREEMENT, VALIDATION_SEED, int8_gate
    from emenet.fast.onnx_backend import state_digest
    min_agreement = INT8_MIN_AGREEMENT if min_agreement is None else min_agreement
    max_ccc_drop = INT8_MAX_CCC_DROP if max_ccc_drop is None else max_ccc_drop
    faces = synthetic_faces(validation_frames, VALIDATION_SEED)
    keys: list = [None] * len(runner.models)
    cached: list = [None] * len(runner.models)
    if cache_dir is not None:
        probes = gate_cache.probe_digest(faces.crops, faces.va)
        keys = [gate_cache.gate_key(runner.gate_identity(i), state_digest(m, "emenet-gate-model"), probes,
                                    min_agreement, max_ccc_drop) for i, m in enumerate(runner.models)]
        cached = [gate_cache.read_verdict(cache_dir, k) for k in keys]
    hits = [i for i, g in enumerate(cached) if g is not None]
    if hits:
        log.info("%s: the accuracy gate's cached verdict was used for member(s) %s (%d passed, lowest agreement "
                 "%.2f%%; kept in %s)", what, hits, sum(cached[i].passed for i in hits),
                 100 * min(cached[i].agreement for i in hits), cache_dir)
    frames = features = None
    gates = []
    with torch.inference_mode():
        for i, model in enumerate(runner.models):
            gate = cached[i]
            if gate is None:
                if features is None:  # the first member without a verdict: run the fast backbones once
                    log.info("%s: checking %d member(s) against eager fp32 on %d synthetic faces (the accuracy gate)",
                             what, len(runner.models) - len(hits), validation_frames)
                    frames = faces.float_frames()
                    features = runner.encode(frames)
                ref, _ = model(frames[:, None])  # each frame alone, eager fp32
                new, _ = model.forward_features(features[i][:, None])
                gate = int8_gate({t: v[:, 0] for t, v in ref.items()}, {t: v[:, 0] for t, v in new.items()}, faces.va,
                                 min_agreement, max_ccc_drop)
                log.info("%s, member %d: %s", what, i, gate.summary())
                if cache_dir is not None:
                    gate_cache.write_verdict(cache_dir, keys[i], gate)
            gates.append(gate)
            if not gate.passed:
                runner.close()
                raise EMENetInputError(f"{what} of member {i} fails its accuracy gate: {gate.summary()}; "
                                       f"use --backend fused")
    return gates


class BF16Runner(FusedRunner):
    """The fused backbones with bf16 weights and activations, on CPUs with native bf16 (emenet.fast.bf16).

    Features come back as float32, so the GRU heads run as for every backend. Each member must
    pass the accuracy gate (as int8 does); `gates` keeps every member's result. EMENet-VA members
    are refused: the gate has no audio to give them.
    """

    name = "bf16"

    def __init__(self, models: Sequence[EMENet], device: torch.device, micro_batch: int = DEFAULT_MICRO_BATCH,
                 num_workers: int | None = None, validation_frames: int = 256, cache_gates: bool = True,
                 cache_dir: str | os.PathLike | None = None):
        from emenet.fast.bf16 import bf16_unavailable_reason
        from emenet.fast.onnx_backend import default_export_cache
        if any(m.uses_audio for m in models):
            raise EMENetInputError("the bf16 backend's accuracy gate is for EMENet-V; use --backend onnx for EMENet-VA")
        reason = bf16_unavailable_reason(device)
        if reason:
            raise EMENetInputError(f"the bf16 backend is unavailable: {reason}")
        PooledRunner.__init__(self, models, device, micro_batch, num_workers)
        start = time.perf_counter()
        from emenet.fast.bf16 import bf16_backbone
        self.backbones = [bf16_backbone(m.backbone, self.device) for m in self.models]
        # the gate's verdicts are kept beside the ONNX exports (emenet.fast.gate_cache); cache_gates=False checks every time
        self.cache_dir = (cache_dir or default_export_cache()) if cache_gates else None
        self.gates = check_member_gates(self, validation_frames, "bf16", self.cache_dir)
        self.setup_seconds = time.perf_counter() - start

    def _forward(self, member: int, frames: torch.Tensor) -> torch.Tensor:
        x = frames.to(torch.bfloat16, memory_format=torch.channels_last)
        return self.backbones[member](x).float()


RUNNERS: dict[str, type[Runner]] = {"eager": EagerRunner, "fused": FusedRunner, "compile": CompiledRunner,
                                    "onnx": OnnxRunner, "int8": Int8Runner, "bf16": BF16Runner}


def unavailable_reason(backend: str, device: torch.device) -> str | None:
    """None if `backend` can run on `device` here, else one line saying why not."""
    device = torch.device(device)
    if backend in ("onnx", "int8"):
        from emenet.fast.onnx_backend import onnx_available
        if not onnx_available():
            return "needs the onnx extra: pip install 'emenet[onnx]'"
        if device.type != "cpu":
            return "runs on the CPU only"
    if backend == "compile":
        return compiler_available()
    if backend == "bf16":
        from emenet.fast.bf16 import bf16_unavailable_reason
        return bf16_unavailable_reason(device)
    return None


def available_backends(device: torch.device | str = "cpu") -> list[str]:
    """The backends that can run on `device` on this machine, in BACKENDS order."""
    return [b for b in BACKENDS if unavailable_reason(b, torch.device(device)) is None]


def resolve_backend(backend: str, models: Sequence[EMENet], device: torch.device | str) -> str:
    """The concrete backend for `backend` ("auto" or a name in BACKENDS); one-line error if unusable.

    auto: on the CPU `onnx` where the onnx extra is installed (the fastest path measured, see
    benchmarks/results; its exported graphs are cached), else `fused`; for EMENet-V and EMENet-VA
    alike (the audio branch of EMENet-VA runs eagerly beside either).
    """
    if backend == AUTO:
        return "onnx" if unavailable_reason("onnx", torch.device(device)) is None else "fused"
    if backend not in RUNNERS:
        raise EMENetInputError(f"unknown backend {backend!r}; valid ones are {[AUTO, *BACKENDS]}")
    reason = unavailable_reason(backend, torch.device(device))
    if reason:
        raise EMENetInputError(f"the {backend} backend is unavailable: {reason}")
    return backend


def make_runner(backend: str, models: Sequence[EMENet], device: torch.device | str, **options) -> Runner:
    """Build the runner of `backend` ("auto" allowed); `options` (micro_batch, num_workers) go to pooled runners."""
    device = torch.device(device)
    name = resolve_backend(backend, models, device)
    cls = RUNNERS[name]
    if cls is EagerRunner:
        return EagerRunner(models, device)
    return cls(models, device, **{k: v for k, v in options.items() if v is not None})
