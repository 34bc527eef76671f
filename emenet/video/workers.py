"""Where a batch's videos run: this process, N local processes, or Ray actors on a cluster.

Every runner loads the model once per worker and then predicts one video after another with
it (`video_job.process_video`), and yields each video's `VideoOutcome` as it finishes, in
whatever order they finish. Progress events (`video_job.ProgressEvent`) travel back to the
caller through `on_event`.

- `run_in_process`: one predictor, videos in order.
- `run_process_pool`: N spawned processes (`concurrent.futures.ProcessPoolExecutor`), each
  loading the model in its initializer; torch and OpenCV get cores / N threads each so that
  N workers do not oversubscribe the machine.
- `run_ray`: one Ray actor per worker (`--ray auto` starts a local Ray, `--ray ADDRESS` joins a
  cluster), each asking for a GPU when the cluster has GPUs, one actor call (task) per video.
  The checkpoints travel through Ray's object store, so nodes need not share the model files;
  the videos and the output folder must be on storage that every node sees.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from emenet.video.job import (PredictSettings, ProgressEvent, VideoJob, VideoOutcome, error_line,
                                        failed_outcome, process_video)

log = logging.getLogger(__name__)

EventSink = Callable[[ProgressEvent], None]
_POLL_SECONDS = 0.2  # how often a runner passes on progress while videos are running


@dataclass(frozen=True)
class PredictorSpec:
    """How a worker builds its predictor: checkpoint files, device, frames per forward pass and
    inference backend (`emenet predict --backend`; its CPU threads follow the worker's limit)."""

    checkpoints: tuple[str, ...]
    device: str = "cpu"
    batch_size: int = 64
    backend: str = "auto"
    coverage: float | None = None  # conformal sets and intervals (emenet.conformal)
    conformal_file: str | None = None

    def build(self, checkpoints: Sequence[str | os.PathLike] | None = None):
        """A Predictor; `checkpoints` replaces the paths (a worker's local copies of the files)."""
        from emenet.inference.predictor import Predictor
        options = {} if self.backend == "auto" else {"backend": self.backend}
        if self.coverage is not None or self.conformal_file is not None:
            options.update(coverage=self.coverage, conformal_file=self.conformal_file)
        return Predictor(list(checkpoints or self.checkpoints), device=self.device, batch_size=self.batch_size,
                         **options)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """Cores / workers, at least 1: N workers together use the machine's cores once."""
    return max(1, (cores or available_cores()) // max(1, workers))


def limit_threads(threads: int) -> None:
    """Intra-op threads of torch and OpenCV in this process (a worker)."""
    import cv2
    import torch
    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


# ------------------------------------------------------------------ in this process

def run_in_process(spec: PredictorSpec, jobs: Sequence[VideoJob], settings: PredictSettings,
                   on_event: EventSink | None = None) -> Iterator[VideoOutcome]:
    """Load the model here once and predict the videos one after another."""
    if not jobs:
        return
    predictor = spec.build()
    try:
        for job in jobs:
            yield process_video(predictor, job, settings, on_event)
    finally:
        close = getattr(predictor, "close", None)  # a backend's worker threads, where it has some
        if close is not None:
            close()


# ------------------------------------------------------------------ local processes

# State of one pool worker process, set once by its initializer: a ProcessPoolExecutor can only
# hand a worker its model through the process itself. Never used in the parent process.
_POOL_WORKER: dict[str, Any] = {}


def _init_pool_worker(spec: PredictorSpec, threads: int, events: Any) -> None:
    limit_threads(threads)
    _POOL_WORKER["events"] = events
    try:
        _POOL_WORKER["predictor"] = spec.build()
    except Exception as exc:  # reported with each video instead of a broken pool
        _POOL_WORKER["error"] = error_line(exc)


def _pool_worker_run(job: VideoJob, settings: PredictSettings) -> VideoOutcome:
    if "error" in _POOL_WORKER:
        return failed_outcome(job, f"the model could not be loaded in the worker: {_POOL_WORKER['error']}")
    events = _POOL_WORKER["events"]
    return process_video(_POOL_WORKER["predictor"], job, settings, events.put)


def _drain(events: Any, on_event: EventSink | None) -> None:
    while True:
        try:
            event = events.get_nowait()
        except queue.Empty:
            return
        if on_event is not None:
            on_event(event)


def run_process_pool(spec: PredictorSpec, jobs: Sequence[VideoJob], settings: PredictSettings, workers: int,
                     on_event: EventSink | None = None) -> Iterator[VideoOutcome]:
    """Predict the videos in `workers` spawned processes (each loads the model once)."""
    if not jobs:
        return
    workers = max(1, min(workers, len(jobs)))
    context = multiprocessing.get_context("spawn")  # no forked torch / OpenCV thread pools
    events = context.Queue()
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_pool_worker,
                               initargs=(spec, threads_per_worker(workers), events))
    try:
        futures: dict[Future, VideoJob] = {pool.submit(_pool_worker_run, job, settings): job for job in jobs}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
            _drain(events, on_event)
            for future in done:
                try:
                    yield future.result()
                except Exception as exc:  # the worker process died (killed, out of memory)
                    yield failed_outcome(futures[future], f"worker process failed: {type(exc).__name__}: {exc}")
        _drain(events, on_event)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        events.close()


# ----------------------------------------------------------------------------- Ray

class VideoActor:
    """A Ray actor's state: the predictor, built once from checkpoint bytes, and the event queue."""

    def __init__(self, spec: PredictorSpec, names: list[str], threads: int, events: Any, *checkpoints: bytes):
        limit_threads(threads)
        folder = tempfile.mkdtemp(prefix="emenet_checkpoints_")
        try:  # the files are read into memory by the predictor; the copies are not needed after
            paths = [Path(folder) / f"{i}_{name}" for i, name in enumerate(names)]
            for path, data in zip(paths, checkpoints):
                path.write_bytes(data)
            self.predictor = spec.build(paths)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.events = events

    def run(self, job: VideoJob, settings: PredictSettings) -> VideoOutcome:
        return process_video(self.predictor, job, settings, self.events.put_nowait)


def init_ray(address: str) -> tuple[Any, bool]:
    """(ray, whether this call connected it): `auto`/`local` start a local Ray, else join `address`."""
    from emenet.distill.parallel import _init_ray  # the project's one Ray set-up
    import ray
    connected_here = not ray.is_initialized()
    return _init_ray(address), connected_here


def ray_plan(resources: dict[str, float], workers: int | None, num_jobs: int) -> tuple[int, int, int]:
    """(actors, CPUs per actor, GPUs per actor) for a cluster's resources.

    With GPUs: one actor per GPU (or `workers`), each asking for one GPU. Without: `workers`
    actors, or one per CPU. CPUs are shared out evenly so that the actors fit.
    """
    cpus, gpus = int(resources.get("CPU", 1)), int(resources.get("GPU", 0))
    actors = workers or (gpus if gpus else cpus)
    actors = max(1, min(actors, num_jobs))
    return actors, max(1, cpus // actors), 1 if gpus else 0


def run_ray(spec: PredictorSpec, jobs: Sequence[VideoJob], settings: PredictSettings, address: str,
            workers: int | None = None, on_event: EventSink | None = None) -> Iterator[VideoOutcome]:
    """Predict the videos on Ray actors (see the module docstring); one actor call per video."""
    if not jobs:
        return
    ray, connected_here = init_ray(address)
    from ray.util.queue import Queue
    actors: list[Any] = []
    events = None
    try:
        num_actors, cpus, gpus = ray_plan(ray.cluster_resources(), workers, len(jobs))
        if gpus:
            spec = replace(spec, device="cuda")
        log.info("Ray: %d actor(s), %d CPU(s) and %d GPU(s) each, for %d video(s)", num_actors, cpus, gpus, len(jobs))
        blobs = [ray.put(Path(p).read_bytes()) for p in spec.checkpoints]  # once into the object store
        names = [Path(p).name for p in spec.checkpoints]
        events = Queue(actor_options={"num_cpus": 0})
        remote = ray.remote(num_cpus=cpus, num_gpus=gpus, max_restarts=0, max_task_retries=0)(VideoActor)

        def new_actor() -> Any:
            actors.append(remote.remote(spec, names, cpus, events, *blobs))
            return actors[-1]

        for _ in range(num_actors):
            new_actor()
        todo = list(jobs)
        running: dict[Any, tuple[VideoJob, Any]] = {}

        def submit(actor: Any) -> None:
            if todo:
                job = todo.pop(0)
                running[actor.run.remote(job, settings)] = (job, actor)

        for actor in list(actors):
            submit(actor)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_SECONDS)
            _drain_ray(events, on_event)
            for ref in ready:
                job, actor = running.pop(ref)
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayActorError as exc:  # the actor died (killed, out of memory)
                    yield failed_outcome(job, f"Ray worker failed: {error_line(exc)}")
                    actor = new_actor()  # a fresh one for the remaining videos
                except Exception as exc:
                    yield failed_outcome(job, exc)
                submit(actor)
        _drain_ray(events, on_event)
    finally:
        for actor in actors:
            ray.kill(actor)
        if events is not None:
            events.shutdown()
        if connected_here:
            ray.shutdown()


def _drain_ray(events: Any, on_event: EventSink | None) -> None:
    size = events.qsize()
    if size and on_event is not None:
        for event in events.get_nowait_batch(size):
            on_event(event)
    elif size:
        events.get_nowait_batch(size)


def check_ray(address: str | None) -> str | None:
    """`address`, or None with a warning when Ray is not installed (the caller falls back)."""
    if address is None:
        return None
    from emenet.extras import is_available
    if not is_available("ray"):
        log.warning("--ray %s: Ray is not installed (pip install 'emenet[ray]'); running in local processes instead",
                    address)
        return None
    return address
