"""Many videos at once: files, folders and globs -> one output folder per video, and a summary.

    emenet predict study/videos/ --checkpoint model.pth --output_dir predictions --workers 2

`find_videos` turns the inputs into jobs: a folder is searched recursively for video files
(`VIDEO_EXTENSIONS`), a glob is expanded (`**` included), a file is taken as it is. Each video
gets the folder `<output_dir>/<name>`, where `name` is its path below the folder or the glob's
fixed part without the extension (a file: its stem), so `batch1/x.mp4` and `batch2/x.mp4` do
not collide. `predict_videos` then

- skips the videos whose folder is complete (`video_job.finished_outcome`) unless `overwrite`;
- predicts the others in this process, in `workers` local processes or on Ray (`workers`);
- writes `<output_dir>/summary.csv` (one row per video: video, output_dir, status, frames,
  tracks, face_frames, seconds, error) after every finished video, atomically, so an
  interrupted run leaves an accurate table (rows not reached yet say "pending");
- shows one progress bar over videos and one over the frames of the video(s) in progress.

    >>> report = predict_videos(["videos/"], "predictions", PredictorSpec(("model.pth",)))  # doctest: +SKIP
    >>> [o.status for o in report.outcomes]  # doctest: +SKIP
    ['done', 'failed', 'skipped']
"""
from __future__ import annotations

import glob
import itertools
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from emenet.errors import EMENetInputError
from emenet.video.job import (SUMMARY_COLUMNS, PredictSettings, ProgressEvent, VideoJob, VideoOutcome,
                                        checkpoint_fingerprints, finished_outcome)
from emenet.video.workers import (PredictorSpec, available_cores, check_ray, run_in_process, run_process_pool,
                                      run_ray)
from emenet.io_utils import atomic_path, remove_stale_temporaries

log = logging.getLogger(__name__)

# Container formats FFmpeg (PyAV) demuxes that hold video; other files in a folder are ignored.
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".flv", ".mpg", ".mpeg", ".ts",
                              ".m2ts", ".mts", ".wmv", ".asf", ".3gp", ".3g2", ".ogv", ".vob", ".mxf", ".dv",
                              ".mj2", ".f4v", ".y4m", ".nut"})
SUMMARY_NAME = "summary.csv"


# ------------------------------------------------------------------------------ inputs

def has_glob(text: str) -> bool:
    return any(c in text for c in "*?[")


def is_batch_input(text: str | os.PathLike) -> bool:
    """A folder or a glob (several videos), as opposed to one file (even one named `a[1].mp4`)."""
    path = Path(text)
    return path.is_dir() or (not path.is_file() and has_glob(str(text)))


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and path.is_file()


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder)


def _glob_root(pattern: str) -> Path:
    """The fixed leading folders of a glob: `data/*/clips/*.mp4` -> `data`."""
    parts = Path(pattern).parts[:-1]
    return Path(*itertools.takewhile(lambda part: not has_glob(part), parts)) if parts else Path(".")


def _expand(text: str, outputs: Path) -> list[tuple[Path, str]]:
    """(video, name) pairs of one input; EMENetInputError when it names no video."""
    path = Path(text)
    if path.is_dir():
        found = [p for p in sorted(path.rglob("*"))
                 if _is_video(p) and not _hidden(p, path) and not _inside(p, outputs)]
        if not found:
            raise EMENetInputError(f"{path}: no video files in this folder or below "
                                   f"(looked for {', '.join(sorted(VIDEO_EXTENSIONS))})")
        return [(p, p.relative_to(path).with_suffix("").as_posix()) for p in found]
    if path.is_file():
        return [(path, path.stem)]
    if has_glob(text):
        root = _glob_root(text)
        found = [Path(p) for p in sorted(glob.glob(text, recursive=True))]
        found = [p for p in found if _is_video(p) and not _hidden(p, root) and not _inside(p, outputs)]
        if not found:
            raise EMENetInputError(f"{text}: the pattern matches no video file")
        return [(p, p.relative_to(root).with_suffix("").as_posix()) for p in found]
    raise EMENetInputError(f"{text}: no such file or folder")


def find_videos(inputs: Sequence[str | os.PathLike], output_dir: str | os.PathLike) -> list[VideoJob]:
    """One job per distinct video of `inputs` (files, folders searched recursively, globs),
    sorted by output name; files under `output_dir` (annotated videos) are never inputs."""
    if not inputs:
        raise EMENetInputError("no video given")
    outputs = Path(output_dir).resolve()
    by_name: dict[str, Path] = {}
    seen: set[Path] = set()
    for text in inputs:
        for video, name in _expand(str(text), outputs):
            key = video.resolve()
            if key in seen:
                continue
            if name in by_name:
                raise EMENetInputError(f"{by_name[name]} and {video} would both write to {Path(output_dir) / name}; "
                                       f"rename one or predict them in separate runs")
            seen.add(key)
            by_name[name] = video
    return [VideoJob(video, name, Path(output_dir) / name) for name, video in sorted(by_name.items())]


# ---------------------------------------------------------------------------- progress

class BatchProgress:
    """Two bars: videos finished (skipped ones included), and frames of the video(s) in progress
    (each frame counts twice: face detection, then prediction)."""

    def __init__(self, total: int, finished: int, enabled: bool = True):
        self.enabled = enabled
        self.videos = tqdm(total=total, initial=finished, unit="video", desc="videos", position=0, disable=not enabled)
        self.frames = tqdm(total=None, unit="frame", desc="frames", position=1, leave=False, disable=not enabled)
        self.running: dict[str, list] = {}  # name -> [frame steps done, frames in the container or None, stage]

    def on_event(self, event: ProgressEvent) -> None:
        name, kind, value = event
        if kind == "start":
            self.running[name] = [0, value, "starting"]
        else:
            state = self.running.setdefault(name, [0, None, kind])
            state[0] += int(value)
            state[2] = kind
        self._refresh()

    def finished(self, name: str) -> None:
        self.running.pop(name, None)
        self.videos.update()
        self._refresh()

    def _refresh(self) -> None:
        if not self.enabled:
            return
        totals = [2 * s[1] if s[1] else None for s in self.running.values()]
        self.frames.total = None if not totals or None in totals else sum(totals)
        self.frames.n = sum(s[0] for s in self.running.values())
        if len(self.running) == 1:
            name, state = next(iter(self.running.items()))
            self.frames.set_description(f"{name}: {state[2]}", refresh=False)
        else:
            self.frames.set_description(f"frames of {len(self.running)} videos" if self.running else "frames",
                                        refresh=False)
        self.frames.refresh()

    def close(self) -> None:
        self.frames.close()
        self.videos.close()

    def __enter__(self) -> "BatchProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------- summary

def write_summary(path: str | os.PathLike, outcomes: Iterable[VideoOutcome]) -> Path:
    """summary.csv, atomically: one row per video, SUMMARY_COLUMNS."""
    table = pd.DataFrame([o.row() for o in outcomes], columns=list(SUMMARY_COLUMNS))
    for column in ("frames", "tracks", "face_frames"):
        table[column] = table[column].astype("Int64")
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    return Path(path)


@dataclass(frozen=True)
class BatchReport:
    outcomes: list[VideoOutcome]  # one per video, in job order
    summary: Path
    seconds: float

    def with_status(self, status: str) -> list[VideoOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def failed(self) -> list[VideoOutcome]:
        return self.with_status("failed")

    def format(self) -> str:
        """A few lines for the terminal: counts, each failure, the summary's path."""
        counts = ", ".join(f"{len(self.with_status(s))} {s}" for s in ("done", "skipped", "failed"))
        lines = [f"{len(self.outcomes)} video(s) in {self.seconds:.1f} s: {counts}"]
        lines += [f"  failed: {failure_line(o)}" for o in self.failed]
        lines.append(f"summary: {self.summary}")
        return "\n".join(lines)


def failure_line(outcome: VideoOutcome) -> str:
    """`video: error`, without naming the video twice (input errors start with its path)."""
    return outcome.error if outcome.error.startswith(outcome.video) else f"{outcome.video}: {outcome.error}"


# ------------------------------------------------------------------------------- run

def _runner(spec: PredictorSpec, jobs: list[VideoJob], settings: PredictSettings, workers: int | None,
            ray_address: str | None, on_event) -> Iterator[VideoOutcome]:
    if ray_address is not None:
        if check_ray(ray_address) is not None:
            return run_ray(spec, jobs, settings, ray_address, workers, on_event)
        workers = workers or available_cores()  # Ray is missing: local processes instead (check_ray said so)
    if (workers or 1) > 1 and len(jobs) > 1:
        return run_process_pool(spec, jobs, settings, workers, on_event)
    return run_in_process(spec, jobs, settings, on_event)


def predict_videos(inputs: Sequence[str | os.PathLike], output_dir: str | os.PathLike, spec: PredictorSpec,
                   settings: PredictSettings | None = None, overwrite: bool = False, workers: int | None = None,
                   ray_address: str | None = None, progress: bool = True) -> BatchReport:
    """Predict every video of `inputs` into `<output_dir>/<name>/` (see the module docstring).

    `workers`: local processes (default 1: this process); with `ray_address` ("auto" or a
    cluster's address) the number of Ray actors (default: one per GPU, else one per CPU).
    Raises EMENetInputError only for bad inputs or checkpoints; a video that fails is a
    "failed" row of the report and the summary.
    """
    start = time.perf_counter()
    if workers is not None and workers < 1:
        raise EMENetInputError(f"--workers must be at least 1, got {workers}")
    jobs = find_videos(inputs, output_dir)
    settings = replace(settings or PredictSettings(), checkpoints=checkpoint_fingerprints(list(spec.checkpoints)))
    outcomes = {job.name: VideoOutcome(str(job.video), str(job.output_dir), "pending") for job in jobs}
    todo = []
    for job in jobs:
        previous = None if overwrite else finished_outcome(job, settings)
        if previous is None:
            todo.append(job)
        else:
            outcomes[job.name] = previous
    if settings.report:  # Plotly's script once, beside the reports, instead of inside each
        from emenet.viz.report.index import write_plotly_js
        settings = replace(settings, plotly_js=str(write_plotly_js(output_dir).resolve()))
    summary = Path(output_dir) / SUMMARY_NAME
    remove_stale_temporaries(summary)  # a killed run may have died while rewriting it
    write_summary(summary, outcomes.values())
    log.info("%d video(s): %d finished earlier, %d to predict -> %s", len(jobs), len(jobs) - len(todo), len(todo),
             output_dir)
    names = {str(job.output_dir): job.name for job in jobs}
    with BatchProgress(len(jobs), len(jobs) - len(todo), progress) as bars:
        for outcome in _runner(spec, todo, settings, workers, ray_address, bars.on_event):
            name = names[outcome.output_dir]
            outcomes[name] = outcome
            bars.finished(name)
            write_summary(summary, outcomes.values())
            if outcome.status == "failed":
                log.warning("failed: %s", failure_line(outcome))
    if settings.report:
        from emenet.viz.report.index import write_report_index
        write_report_index(output_dir, list(outcomes.values()))
    return BatchReport(list(outcomes.values()), summary, time.perf_counter() - start)
