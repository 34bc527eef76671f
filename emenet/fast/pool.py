"""Coarse-grained CPU parallelism: whole micro-batches on worker threads of one intra-op thread each.

Why not torch's own intra-op threads: on a small CPU shared with other processes, OpenMP's
workers spin at every barrier of every layer while another process holds the core they wait
for; measured on the 2-core machine of benchmarks/results, a 8-frame micro-batch took 5x
the CPU time with 2 intra-op threads than with 1. Independent micro-batches (and ensemble
members) need no barrier: each worker runs whole forwards, torch releases the GIL inside
its kernels, and a busy core only delays its own micro-batch. Small micro-batches also keep
every activation in the cache (a 64-frame batch has 100 MB activations that glibc maps and
unmaps at each layer: the system time of the eager baseline).

`torch.set_num_threads` applies to the calling thread's OpenMP team, so the workers' setting
does not change the caller's.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


def _one_intra_op_thread() -> None:
    torch.set_num_threads(1)


def default_num_workers() -> int:
    """As many workers as torch would use intra-op threads (the physical cores by default)."""
    return max(1, torch.get_num_threads())


class WorkerPool:
    """`map(fn, items)` on `num_workers` threads, each with one intra-op thread, under inference mode.

    >>> pool = WorkerPool(2)
    >>> pool.map(lambda x: x * 2, [1, 2, 3])
    [2, 4, 6]
    >>> pool.close()
    """

    def __init__(self, num_workers: int | None = None):
        self.num_workers = default_num_workers() if num_workers is None else int(num_workers)
        if self.num_workers < 1:
            raise ValueError(f"num_workers must be at least 1, got {self.num_workers}")
        self._executor = ThreadPoolExecutor(self.num_workers, thread_name_prefix="emenet-fast",
                                            initializer=_one_intra_op_thread)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        def run(item: T) -> R:
            with torch.inference_mode():  # grad mode is per thread
                return fn(item)
        return list(self._executor.map(run, items))

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
