"""BlazeFace as an ONNX graph for ONNX Runtime (the `onnx` extra), cached like the backbones.

The graph is exported once per model and torch version and kept in the export cache
(`$XDG_CACHE_HOME/emenet/onnx`); the batch axis is dynamic. Its channel-padding residuals and
narrow bottlenecks are rewritten (emenet.face.blazeface.graph_rewrite) so that ONNX Runtime keeps
the whole network in its blocked layout: about 1.6x faster per view on AVX-512 (1.43x, then
1.13x), the same outputs up to rounding.
"""
from __future__ import annotations

import hashlib
import logging
import os

import numpy as np
import torch

from emenet.face.blazeface.network import BlazeFaceNet, model_files

log = logging.getLogger(__name__)

INPUT_NAME = "views"
OUTPUT_NAMES = ("regressors", "scores")
EXPORT_FORMAT = 3  # part of the cache key: bump when export_detector's graph changes


def export_detector(net: BlazeFaceNet, batch: int = 2) -> bytes:
    """The network as a serialised ONNX model: (N, 3, S, S) -> (N, A, 16), (N, A); N dynamic."""
    from emenet.face.blazeface.graph_rewrite import split_channel_pads, widen_narrow_bottlenecks
    from emenet.fast.onnx_backend import _quiet_exporter, require_onnx
    require_onnx()
    size = net.input_size
    example = torch.rand(batch, 3, *size) * 2 - 1
    with _quiet_exporter():
        program = torch.onnx.export(net, (example,), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                                    dynamic_shapes=({0: torch.export.Dim("views")},), dynamo=True,
                                    verbose=False, optimize=True)
    return widen_narrow_bottlenecks(split_channel_pads(program.model_proto.SerializeToString()))


def detector_key(model: str) -> str:
    """A digest of what the exported graph depends on: the shipped files, the export, torch's version."""
    digest = hashlib.sha256(f"blazeface-{EXPORT_FORMAT}-torch-{torch.__version__}".encode())
    for path in model_files(model):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def detector_session(net: BlazeFaceNet, model: str, cache_dir: str | os.PathLike | None = "default",
                     threads: int = 1):
    """An ONNX Runtime session of the detector, from the export cache (built there the first time)."""
    from emenet.fast.onnx_backend import cached_graph, default_export_cache, make_session
    cache = default_export_cache() if cache_dir == "default" else cache_dir

    def build() -> bytes:
        log.info("exporting the BlazeFace %s detector to ONNX (once; kept in %s)", model, cache)
        return export_detector(net)

    return make_session(cached_graph(cache, f"blazeface-{model}-{detector_key(model)[:40]}.onnx", build), threads)


def run_detector_session(session, views: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V, 3, S, S) float32 in [-1, 1] -> regressors (V, A, 16), score logits (V, A)."""
    regressors, scores = session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(views, np.float32)})
    return regressors, scores
