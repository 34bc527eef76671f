"""Running independent jobs (ensemble members, annotation shards) in process or as Ray tasks.

Ray is the engine when the user asks for it (`--ray auto` starts a local cluster, `--ray
ADDRESS` joins one); each task asks for one GPU when CUDA is available. A job that fails is
reported, not fatal: the caller decides whether the others are enough.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from emenet.extras import is_available, require

log = logging.getLogger(__name__)


@dataclass
class JobOutcome:
    key: str
    ok: bool
    value: Any = None
    error: str | None = None


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the worker's exception
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"


def _init_ray(address: str) -> Any:
    ray = require("ray")
    if not ray.is_initialized():
        if address in ("auto", "local"):
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False)
    return ray


def run_jobs(fn: Callable[..., Any], jobs: list[tuple[str, dict]], ray_address: str | None = None,
             cpus_per_job: int = 1) -> list[JobOutcome]:
    """Run `fn(**kwargs)` for every (key, kwargs); in order in this process, or in parallel on Ray."""
    if ray_address and not is_available("ray"):
        log.warning("--ray %s: Ray is not installed (pip install 'emenet[ray]'); running in this process", ray_address)
        ray_address = None
    if not ray_address:
        outcomes = []
        for key, kwargs in jobs:
            try:
                outcomes.append(JobOutcome(key, True, fn(**kwargs)))
            except Exception as exc:  # a failed member must not stop the others
                log.error("%s failed: %s", key, _first_line(exc))
                outcomes.append(JobOutcome(key, False, error=_first_line(exc)))
        return outcomes
    ray = _init_ray(ray_address)
    gpus = 1 if torch.cuda.is_available() else 0
    remote = ray.remote(num_cpus=cpus_per_job, num_gpus=gpus, max_retries=0)(fn)
    refs = [(key, remote.remote(**kwargs)) for key, kwargs in jobs]
    outcomes = []
    for key, ref in refs:
        try:
            outcomes.append(JobOutcome(key, True, ray.get(ref)))
        except Exception as exc:
            log.error("%s failed on Ray: %s", key, _first_line(exc))
            outcomes.append(JobOutcome(key, False, error=_first_line(exc)))
    return outcomes
