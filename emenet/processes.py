"""Start method for the library's local process pools (synthetic data, audio extraction).

`forkserver`, not `fork`: forking a process that already runs threads (torch's and OpenCV's
pools, ONNX Runtime, a compiled model's workers) can leave the child with a lock held forever,
or kill it. The fork server is a fresh single-threaded process started once per pool owner, so
its children are clean and still start quickly; where it does not exist (Windows), `spawn`.
"""
from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext


def process_pool_context() -> BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
