"""Decode every video's audio track ahead of EMENet-VA training (`extract_audio_files.py`).

Each video under `video_dir` (searched recursively for .mp4 / .avi, as Aff-wild2's
videos/batch1|batch2) becomes `<audio_outdir>/<stem>-<hash>.16000hz.npy`: 16 kHz mono float32,
sample 0 = the start of the first video frame (`emenet.audio`). These are exactly the files the
training reads from its audio cache, so pass the same folder as `--audio_dir` when training.

Resumable: a video whose file exists and is newer than the video is skipped; every file is
written atomically, so an interrupted run leaves no partial track. `extraction.csv` lists every
video with its status (decoded, cached, failed) and error.

    >>> report = extract_audio_files("data/affwild2/videos", "data/affwild2/audio")  # doctest: +SKIP
    >>> len(report.decoded), len(report.cached), report.failed  # doctest: +SKIP
    (548, 0, [])
"""
from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from emenet.audio import SAMPLE_RATE, audio_cache_path
from emenet.data.audio_windows import decode_to_cache, is_fresh
from emenet.data.video_info import VIDEO_EXTENSIONS
from emenet.errors import EMENetInputError
from emenet.processes import process_pool_context
from emenet.io_utils import atomic_path

log = logging.getLogger(__name__)

REPORT_NAME = "extraction.csv"


@dataclass
class ExtractionReport:
    audio_outdir: Path
    decoded: list[Path] = field(default_factory=list)
    cached: list[Path] = field(default_factory=list)  # already there and fresh: skipped
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (video, one-line error)


def find_videos(video_dir: str | os.PathLike) -> list[Path]:
    """Every .mp4 / .avi file under `video_dir`, recursively, sorted."""
    root = Path(video_dir)
    if not root.is_dir():
        raise EMENetInputError(f"{root}: video folder not found")
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())


def _decode_one(video: Path, audio_outdir: Path, sample_rate: int) -> tuple[Path, float, int, str | None]:
    """(video, seconds, samples, error): a top-level function so worker processes can run it."""
    started = time.perf_counter()
    try:
        path = decode_to_cache(video, audio_outdir, sample_rate)
        samples = len(np.load(path, mmap_mode="r", allow_pickle=False))
        return video, time.perf_counter() - started, samples, None
    except EMENetInputError as exc:
        return video, time.perf_counter() - started, 0, str(exc)



def extract_audio_files(video_dir: str | os.PathLike, audio_outdir: str | os.PathLike, sample_rate: int = SAMPLE_RATE,
                        overwrite: bool = False, num_workers: int = 1, progress: bool = True) -> ExtractionReport:
    """Decode the audio of every video under `video_dir` into `audio_outdir` (see the module doc)."""
    if num_workers < 1:
        raise EMENetInputError(f"--num_workers must be >= 1, got {num_workers}")
    out = Path(audio_outdir)
    out.mkdir(parents=True, exist_ok=True)
    videos = find_videos(video_dir)
    if not videos:
        raise EMENetInputError(f"{video_dir}: no .mp4 or .avi videos found")
    report = ExtractionReport(out)
    if overwrite:
        for v in videos:
            audio_cache_path(out, v, sample_rate).unlink(missing_ok=True)
    todo = [v for v in videos if not is_fresh(audio_cache_path(out, v, sample_rate), v)]
    report.cached = [v for v in videos if v not in set(todo)]
    log.info("%d videos: %d to decode, %d already in %s", len(videos), len(todo), len(report.cached), out)
    rows = {v: {"video": str(v), "audio": str(audio_cache_path(out, v, sample_rate)), "status": "cached",
                "seconds": np.nan, "samples": np.nan, "error": ""} for v in videos}
    bar = tqdm(total=len(todo), desc="extract audio", unit="video", disable=not progress)
    try:
        if num_workers == 1 or len(todo) <= 1:
            results = (_decode_one(v, out, sample_rate) for v in todo)
            _collect(results, report, rows, bar)
        else:
            with ProcessPoolExecutor(min(num_workers, len(todo)), mp_context=process_pool_context()) as pool:
                _collect(pool.map(_decode_one, todo, [out] * len(todo), [sample_rate] * len(todo)), report, rows, bar)
    finally:
        bar.close()
        with atomic_path(out / REPORT_NAME) as tmp:
            pd.DataFrame(list(rows.values())).to_csv(tmp, index=False)
    return report


def _collect(results, report: ExtractionReport, rows: dict, bar) -> None:
    for video, seconds, samples, error in results:
        rows[video].update(seconds=round(seconds, 3), samples=samples, status="failed" if error else "decoded",
                           error=error or "")
        if error:
            log.warning("%s", error)
            report.failed.append((video, error))
        else:
            report.decoded.append(video)
        bar.update()
