"""One video of a batch: predict it into its own folder and mark the folder complete.

A video's folder holds the files of `predict_video_to_files` (CSV, annotated MP4, timeline
PNG) and, written last and atomically, `emenet_done.json`: the completeness marker, with the
settings the outputs were made with, the size of every file and the run's counts. A folder
without a marker whose files all match it is unfinished work (a run was interrupted) and is
redone; a finished folder is skipped on a rerun unless `--overwrite` is given.

`process_video` never raises for a bad video: it returns a `VideoOutcome` whose `error` is
one line, so one undecodable file does not stop a study's worth of others.

    >>> job = VideoJob(Path("videos/a.mp4"), "a", Path("predictions/a"))  # doctest: +SKIP
    >>> process_video(predictor, job, PredictSettings()).status  # doctest: +SKIP
    'done'
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from emenet.errors import EMENetInputError
from emenet.face.detector_options import DetectorOptions
from emenet.failures import failure_message
from emenet.video.outputs import predict_video_to_files, video_output_paths
from emenet.inference.predictor import Predictor
from emenet.video.predict import DEFAULT_MIN_TRACK_LENGTH, DEFAULT_SMOOTH_SIGMA, read_video_meta
from emenet.io_utils import file_sha256, write_json

log = logging.getLogger(__name__)

DONE_NAME = "emenet_done.json"
STATUSES = ("done", "skipped", "failed", "pending")

ProgressEvent = tuple[str, str, Any]
"""(video name, kind, value): ("start", frames in the container or None), then
("detecting" | "predicting", frames just processed)."""
Reporter = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class VideoJob:
    """A video and its output folder; `name` is the folder relative to the batch's output root."""

    video: Path
    name: str
    output_dir: Path

    @property
    def marker(self) -> Path:
        return self.output_dir / DONE_NAME

    def output_files(self) -> tuple[Path, Path, Path]:
        return video_output_paths(self.output_dir, self.video)


@dataclass(frozen=True)
class PredictSettings:
    """What a video's outputs depend on besides the video; finished outputs made with other
    settings are not mistaken for this run's. `checkpoints`: (file name, sha256) per model."""

    main_face: bool = False
    min_track_length: int = DEFAULT_MIN_TRACK_LENGTH
    smooth_sigma: float = DEFAULT_SMOOTH_SIGMA
    checkpoints: tuple[tuple[str, str], ...] = ()
    report: bool = False  # also <stem>_report.html (emenet.viz.report)
    plotly_js: str | None = None  # Plotly's script written once for all reports (None: embedded in each)
    detector: DetectorOptions = DetectorOptions()

    def record(self) -> dict[str, Any]:
        """JSON form, as stored in the marker."""
        return {"main_face": self.main_face, "min_track_length": self.min_track_length,
                "smooth_sigma": self.smooth_sigma, "checkpoints": [list(c) for c in self.checkpoints],
                "detector": self.detector.record(), **({"report": True} if self.report else {})}


def checkpoint_fingerprints(paths: list[str | os.PathLike]) -> tuple[tuple[str, str], ...]:
    """(file name, sha256) of each checkpoint: the models' identity, wherever the files live."""
    out = []
    for p in paths:
        if not Path(p).is_file():
            raise EMENetInputError(f"{p}: checkpoint not found")
        out.append((Path(p).name, file_sha256(p)))
    return tuple(out)


@dataclass
class VideoOutcome:
    """One row of summary.csv (`worker`, the process id that ran it, is not written there)."""

    video: str
    output_dir: str
    status: str
    frames: int | None = None
    tracks: int | None = None
    face_frames: int | None = None
    seconds: float | None = None
    error: str = ""
    worker: int | None = field(default=None, compare=False)
    peak_rss_mb: float | None = field(default=None, compare=False)  # the worker's peak memory so far

    def row(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k in SUMMARY_COLUMNS}


_NOT_SUMMARY = ("worker", "peak_rss_mb")  # about the worker, not the video
SUMMARY_COLUMNS: tuple[str, ...] = tuple(k for k in VideoOutcome.__dataclass_fields__ if k not in _NOT_SUMMARY)


def peak_rss_mb() -> float | None:
    """Peak resident memory of this process in MiB (None where `resource` is missing)."""
    try:
        import resource
    except ImportError:  # not on Unix
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def error_line(exc: BaseException) -> str:
    """One line for the summary: the message of a user-facing error, else `Type: last line`."""
    cause = getattr(exc, "cause", None) or exc  # Ray wraps the worker's exception
    text = failure_message(cause)  # a user's or the machine's failure (bad file, full disk, ...)
    if text is None:
        lines = str(cause).strip().splitlines()
        text = f"{type(cause).__name__}: {lines[-1] if lines else ''}".rstrip(": ")
    return " ".join(text.split())


def failed_outcome(job: VideoJob, exc: BaseException | str, seconds: float | None = None) -> VideoOutcome:
    message = exc if isinstance(exc, str) else error_line(exc)
    return VideoOutcome(str(job.video), str(job.output_dir), "failed", seconds=seconds, error=message)


# ------------------------------------------------------------------------ the marker

def finished_outcome(job: VideoJob, settings: PredictSettings) -> VideoOutcome | None:
    """The outcome of an earlier run whose outputs are complete (status "skipped"); a "failed"
    outcome when they are complete but were made with other settings; None when the folder
    holds no finished outputs (nothing there, or an interrupted run's leftovers)."""
    try:
        info = json.loads(job.marker.read_text())
        files = {Path(job.output_dir) / name: size for name, size in info["files"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not files or any(not p.is_file() or p.stat().st_size != size for p, size in files.items()):
        return None
    if info.get("settings") != settings.record():
        differ = sorted(k for k, v in settings.record().items() if info.get("settings", {}).get(k) != v)
        return failed_outcome(job, f"{job.output_dir} holds finished outputs made with other settings "
                                   f"({', '.join(differ)}); pass --overwrite to redo them")
    return VideoOutcome(str(job.video), str(job.output_dir), "skipped", info.get("frames"), info.get("tracks"),
                        info.get("face_frames"), info.get("seconds"))


def remove_leftovers(job: VideoJob) -> None:
    """Delete the marker and the temporary files an interrupted run may have left (a killed
    process cannot clean up after itself); finished files are replaced atomically later."""
    job.marker.unlink(missing_ok=True)
    if not job.output_dir.is_dir():
        return
    names = [p.name for p in job.output_files()] + [DONE_NAME]
    for path in job.output_dir.iterdir():
        if path.name.endswith(".tmp") and any(path.name.startswith(f".{n}.") for n in names):
            path.unlink(missing_ok=True)


# ----------------------------------------------------------------------- the work

def process_video(predictor: Predictor, job: VideoJob, settings: PredictSettings,
                  report: Reporter | None = None) -> VideoOutcome:
    """Predict one video into `job.output_dir` (replacing what is there) and write its marker.

    Progress goes to `report` (see ProgressEvent). Failures become a "failed" outcome.
    """
    start = time.perf_counter()
    try:
        remove_leftovers(job)
        if report is not None:
            report((job.name, "start", read_video_meta(job.video).num_frames_hint))
        progress = (lambda stage, n: report((job.name, stage, n))) if report is not None else False
        plotly_js = True if settings.plotly_js is None else os.path.relpath(settings.plotly_js, job.output_dir)
        outputs = predict_video_to_files(predictor, job.video, job.output_dir, overwrite=True,
                                         smooth_sigma=settings.smooth_sigma, progress=progress,
                                         main_face=settings.main_face, min_track_length=settings.min_track_length,
                                         report=settings.report, plotly_js=plotly_js,
                                         detector=settings.detector.build())
        result = outputs.result
        seconds = time.perf_counter() - start
        outcome = VideoOutcome(str(job.video), str(job.output_dir), "done", result.num_frames,
                               len(result.predictions), int(result.any_face.sum()), round(seconds, 3),
                               worker=os.getpid(), peak_rss_mb=peak_rss_mb())
        marker = {**outcome.row(), "settings": settings.record(), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "files": {p.name: p.stat().st_size for p in outputs.paths},
                  "track_ids": result.track_ids, "dropped_tracks": len(result.tracks) - result.num_kept,
                  # busy seconds per pipeline stage, slowest first: which stage holds the video back
                  "stage_seconds": {k: v["seconds"] for k, v in outputs.stages.items()},
                  "stage_frames_per_s": {k: v["frames_per_s"] for k, v in outputs.stages.items()}}
        write_json(job.marker, marker)
        return outcome
    except Exception as exc:  # one bad video must not stop the others; the summary says why
        if failure_message(exc) is None:  # a bug: keep its traceback in the log
            log.warning("%s failed", job.video, exc_info=True)
        if job.output_dir.is_dir() and not any(job.output_dir.iterdir()):
            job.output_dir.rmdir()
        return replace(failed_outcome(job, exc, round(time.perf_counter() - start, 3)), worker=os.getpid(),
                       peak_rss_mb=peak_rss_mb())
