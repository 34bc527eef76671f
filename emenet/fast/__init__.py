"""Fast inference paths for EMENet-V: BN folding, channels-last, micro-batched CPU workers,
torch.compile, ONNX Runtime, int8 and bf16 (see emenet.fast.runners for the table and the `auto` rule).

    >>> from emenet.fast import BACKENDS
    >>> BACKENDS
    ('eager', 'fused', 'compile', 'onnx', 'int8', 'bf16')
"""
from emenet.fast.runners import (AUTO, BACKENDS, Runner, available_backends, make_runner, resolve_backend,
                                 unavailable_reason)

__all__ = ["AUTO", "BACKENDS", "Runner", "available_backends", "make_runner", "resolve_backend", "unavailable_reason"]
