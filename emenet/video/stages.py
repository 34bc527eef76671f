"""Concurrent pipeline stages for the video pipeline: bounded queues between threads, and stage clocks.

A video passes decode -> detect -> track (pass 1), then decode -> crop -> predict -> write
(pass 2). Decoding (PyAV), the detector and the predictor (ONNX Runtime, torch) and the MP4
encoder spend their time in C code that releases the GIL, so running them in threads joined
by small bounded queues overlaps them, and memory stays flat in video length: at most
`depth` chunks wait between two stages.

`StageClock` adds up each stage's busy seconds and frames, so the slowest stage is visible
(`stage_seconds` in a video job's marker, the video benchmark's stage rows).

    >>> clock = StageClock()
    >>> with clock.timed("decode", frames=64):
    ...     pass
    >>> clock.frames()["decode"]
    64
    >>> list(prefetch(iter(range(3)), depth=2))
    [0, 1, 2]
"""
from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_QUEUE_DEPTH = 2  # chunks waiting between two stages: enough to overlap, little memory
_DONE = object()  # the producer's end-of-stream mark
_POLL_SECONDS = 0.1  # how often a blocked thread checks whether the other side has stopped


class StageClock:
    """Busy seconds and frames per stage, added up from any thread (one lock, taken briefly)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seconds: dict[str, float] = {}
        self._frames: dict[str, int] = {}

    def add(self, stage: str, seconds: float, frames: int = 0) -> None:
        with self._lock:
            self._seconds[stage] = self._seconds.get(stage, 0.0) + seconds
            self._frames[stage] = self._frames.get(stage, 0) + frames

    @contextlib.contextmanager
    def timed(self, stage: str, frames: int = 0) -> Iterator[None]:
        """Count the block's wall time as `stage`'s busy time (and `frames` as its work)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - start, frames)

    def seconds(self) -> dict[str, float]:
        with self._lock:
            return dict(self._seconds)

    def frames(self) -> dict[str, int]:
        with self._lock:
            return dict(self._frames)

    def summary(self) -> dict[str, dict[str, float]]:
        """{stage: {"seconds", "frames", "frames_per_s"}}, slowest stage first (JSON-ready)."""
        seconds, frames = self.seconds(), self.frames()
        out = {}
        for stage in sorted(seconds, key=seconds.get, reverse=True):
            s, n = seconds[stage], frames[stage]
            out[stage] = {"seconds": round(s, 4), "frames": n, "frames_per_s": round(n / s, 2) if s > 0 else None}
        return out


def timed_iter(items: Iterable[T], clock: StageClock | None, stage: str,
               frames: Callable[[T], int] = len) -> Iterator[T]:
    """`items`, the time spent producing each one counted as `stage`'s busy time."""
    it = iter(items)
    while True:
        start = time.perf_counter()
        try:
            item = next(it)
        except StopIteration:
            return
        if clock is not None:
            clock.add(stage, time.perf_counter() - start, frames(item))
        yield item


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put `item` unless `stop` is set first; False when the consumer has gone."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL_SECONDS)
            return True
        except queue.Full:
            continue
    return False


def prefetch(items: Iterable[T], depth: int = DEFAULT_QUEUE_DEPTH, name: str = "emenet-prefetch") -> Iterator[T]:
    """Iterate `items` in a background thread, at most `depth` items ahead of the consumer.

    The producer's exception is raised in the consumer, at the item where it happened; a
    consumer that stops early (break, an exception, close()) stops the producer at its next item.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if not _put(q, (item, None), stop):
                    return
            _put(q, (_DONE, None), stop)
        except BaseException as exc:  # handed to the consumer, raised there
            _put(q, (_DONE, exc), stop)
        finally:
            close = getattr(items, "close", None)  # a generator's finally blocks (open files) run here
            if close is not None and stop.is_set():
                close()

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if exc is not None:
                raise exc
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        thread.join()


class BackgroundConsumer(Generic[T]):
    """Calls `consume(item)` in a thread for every `put(item)`, in order, at most `depth` behind.

    `close()` waits for the queued items and raises the first exception `consume` raised
    (`put` raises it too, as soon as it is known). Use as a context manager.
    """

    def __init__(self, consume: Callable[[T], None], depth: int = DEFAULT_QUEUE_DEPTH,
                 name: str = "emenet-consumer"):
        self._consume = consume
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if self._error is not None:
                continue  # drain: the error is raised in the caller
            try:
                self._consume(item)
            except BaseException as exc:
                self._error = exc
                self._stop.set()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def put(self, item: T) -> None:
        self._raise()
        if not _put(self._queue, item, self._stop):
            self._raise()

    def close(self) -> None:
        """Wait for every queued item, stop the thread, raise `consume`'s exception if any."""
        if self._thread.is_alive():
            self._queue.put(_DONE)  # the thread drains the queue, so this returns
            self._thread.join()
        self._raise()

    def __enter__(self) -> "BackgroundConsumer[T]":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
