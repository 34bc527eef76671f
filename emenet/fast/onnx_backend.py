"""The backbone as an ONNX graph run by ONNX Runtime (the optional `onnx` extra), fp32 or int8.

Only the per-frame MobileFaceNet is exported (batch axis dynamic): it holds all but 0.3% of
the multiply-adds. The GRU heads stay in torch, so streaming with a hidden state is the same
code for every backend. Sessions are built with one intra-op thread and no spinning: the
caller's `WorkerPool` runs several micro-batches at once (see emenet.fast.pool).

    >>> proto = export_backbone(model.backbone)  # doctest: +SKIP
    >>> session = make_session(proto)  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from emenet.errors import EMENetInputError
from emenet.extras import is_available, require
from emenet.fast.fold import fold_batch_norm
from emenet.fast.prelu import prelu_as_convolutions
from emenet.io_utils import atomic_path, user_cache_dir
from emenet.models.mobilefacenet import INPUT_SIZE

if TYPE_CHECKING:  # the onnx extra: imported only where a session is made
    import onnxruntime

log = logging.getLogger(__name__)

INPUT_NAME = "frames"
OUTPUT_NAME = "features"
ONNX_MODULES = ("onnxruntime", "onnx", "onnxscript")  # what the `onnx` extra installs


def onnx_available() -> bool:
    """Whether ONNX Runtime and the exporter's dependencies import."""
    return all(is_available(m) for m in ONNX_MODULES)


def require_onnx() -> None:
    for module in ONNX_MODULES:
        if not is_available(module):
            raise EMENetInputError(f"{module} is not installed; the onnx and int8 backends need the extra: "
                                   f"pip install 'emenet[onnx]'")
    require("onnxruntime")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's progress lines and optimiser notes are not for our users' logs."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir", "onnxruntime")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_backbone(backbone: nn.Module, batch: int = 2, blocked_prelu: bool = True) -> bytes:
    """The BN-folded backbone as a serialised ONNX model: (N, 3, 112, 112) -> (N, 512), N dynamic.

    With `blocked_prelu` (the default, also for int8) every PReLU is exported as depthwise
    convolutions that stay in ONNX Runtime's blocked layout (see emenet.fast.prelu).
    """
    require_onnx()
    folded = fold_batch_norm(backbone).cpu().float()
    if blocked_prelu:
        folded = prelu_as_convolutions(folded)
    example = torch.rand(batch, 3, INPUT_SIZE, INPUT_SIZE)
    with _quiet_exporter():
        program = torch.onnx.export(folded, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=({0: torch.export.Dim("frames")},), dynamo=True,
                                    verbose=False, optimize=True)
    return program.model_proto.SerializeToString()


EXPORT_FORMAT = 2  # part of the cache key: bump whenever export_backbone's graph changes


def state_digest(module: nn.Module, salt: str) -> str:
    """SHA-256 of `salt` and every state-dict entry's name, dtype, shape and bytes: the weights' identity."""
    digest = hashlib.sha256(salt.encode())
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def backbone_key(backbone: nn.Module, blocked_prelu: bool = True) -> str:
    """A digest of everything an exported graph depends on: weights, export settings, torch version."""
    return state_digest(backbone, f"emenet-onnx-{EXPORT_FORMAT}-{blocked_prelu}-torch-{torch.__version__}")


def default_export_cache() -> Path:
    """Where exported graphs are kept between runs: `$XDG_CACHE_HOME/emenet/onnx` (`~/.cache/...`)."""
    return user_cache_dir() / "onnx"


def cached_export(backbone: nn.Module, cache_dir: str | os.PathLike | None, blocked_prelu: bool = True) -> bytes:
    """`export_backbone`, kept in `cache_dir` under a digest of the weights (None: no cache).

    Exporting takes about 10 s per member on a small CPU and building a session from the
    graph milliseconds, so a cached ensemble starts at once. The graph is written atomically;
    a cache that cannot be written only costs the export next time.
    """
    def build() -> bytes:
        log.info("exporting a backbone to ONNX (once per checkpoint, about 10 s; kept in %s)", cache_dir)
        return export_backbone(backbone, blocked_prelu=blocked_prelu)
    return cached_graph(cache_dir, f"backbone-{backbone_key(backbone, blocked_prelu)[:40]}.onnx", build)


def cached_graph(cache_dir: str | os.PathLike | None, name: str, build: Callable[[], bytes]) -> bytes:
    """The graph file `name` in `cache_dir`, built by `build()` and written atomically the first
    time (None: no cache). A cache that cannot be written only costs the build next time."""
    if cache_dir is None:
        return build()
    path = Path(cache_dir) / name
    if path.is_file():
        return path.read_bytes()
    graph = build()
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(graph)
    except OSError as exc:
        log.warning("could not keep %s in %s (%s); the next run builds it again", name, cache_dir, exc)
    return graph


def make_session(model: bytes, threads: int = 1) -> "onnxruntime.InferenceSession":
    """An ONNX Runtime CPU session with all graph optimisations, `threads` intra-op threads, no spinning."""
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def run_session(session, frames: torch.Tensor) -> torch.Tensor:
    """(N, 3, 112, 112) float frames -> (N, 512) features, through `session`."""
    x = np.ascontiguousarray(frames.detach().cpu().float().numpy())
    return torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x})[0])


def _calibration_batches(frames: np.ndarray, batch: int) -> Iterator[dict[str, np.ndarray]]:
    for start in range(0, len(frames), batch):
        yield {INPUT_NAME: frames[start:start + batch]}


def quantize_backbone(model: bytes, calibration: np.ndarray, batch: int = 8) -> bytes:
    """Static int8 quantization (QDQ, per-channel int8 weights, uint8 activations) of an exported backbone.

    `calibration` is (N, 3, 112, 112) float32 frames in [0, 1] that set the activation ranges
    (MinMax); use frames like those the model will see (synthetic faces: see emenet.fast.int8).
    """
    require_onnx()
    log.info("quantizing a backbone to int8 on %d calibration frames (once per checkpoint when cached)",
             len(calibration))
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = _calibration_batches(np.ascontiguousarray(calibration, np.float32), batch)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    with tempfile.TemporaryDirectory(prefix="emenet-int8-") as tmp, _quiet_exporter():
        src, pre, out = (Path(tmp) / name for name in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(model)
        quant_pre_process(str(src), str(pre))
        quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return out.read_bytes()
