"""Prediction files for a photo (PNG, PDF, JSON) and a raw video (CSV, annotated MP4, timeline PNG).

Every file is written to a temporary name beside its target and moved into place only when
all of them succeeded; existing outputs are refused unless `overwrite=True`, before any work.

    >>> outputs = predict_video_to_files(predictor, "utterance_1.mp4", "predictions/")  # doctest: +SKIP
    >>> outputs.csv, outputs.video, outputs.timeline  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from emenet.errors import EMENetInputError
from emenet.face.detector import FaceDetector
from emenet.face.tracking import FaceTracker
from emenet.viz.drawing import PANEL_WIDTH, TrackOverlay, annotate_tracks, panel_height
from emenet.viz.faces_figure import plot_faces_prediction
from emenet.inference.image import ImagePrediction
from emenet.inference.predictor import Predictor
from emenet.inference.results import FramePredictions
from emenet.video.stages import StageClock
from emenet.video.timeline import plot_timeline
from emenet.video.predict import (DEFAULT_MIN_TRACK_LENGTH, DEFAULT_SMOOTH_SIGMA, FrameProgress,
                                    MultiTrackPrediction, PredictedChunk, TrackGeometry, VideoPrediction, VideoTracks,
                                    VideoWriter, predict_video_tracks)
from emenet.io_utils import atomic_path

log = logging.getLogger(__name__)


def _refuse_existing(paths: list[Path], overwrite: bool) -> None:
    """Refuse to replace a finished set of outputs without `overwrite`. Part of a set is what a
    run killed between its renames left (the files are written together): it is replaced."""
    existing = [str(p) for p in paths if p.exists()]
    if existing and len(existing) < len(paths):
        log.warning("%s: an incomplete set of outputs (an interrupted run?); replacing it", ", ".join(existing))
        return
    if existing and not overwrite:
        raise EMENetInputError(f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''}; "
                               f"pass --overwrite to replace {'it' if len(existing) == 1 else 'them'}")


# ------------------------------------------------------------------------------- photo

@dataclass(frozen=True)
class ImageOutputs:
    png: Path
    pdf: Path
    json: Path


def image_output_paths(output_dir: str | os.PathLike, stem: str) -> ImageOutputs:
    out = Path(output_dir)
    return ImageOutputs(out / f"{stem}_emenet.png", out / f"{stem}_emenet.pdf", out / f"{stem}_emenet.json")


def write_image_outputs(result: ImagePrediction, output_dir: str | os.PathLike, checkpoints: list[str] | None = None,
                        overwrite: bool = False, conformal=None, conformal_settings=None) -> ImageOutputs:
    """The figure as PNG and PDF and every number as JSON, named after the image; with `conformal`
    (emenet.conformal.apply's columns of the face) its sets and intervals join both."""
    stem = Path(result.source).stem if result.source != "array" else "image"
    paths = image_output_paths(output_dir, stem)
    _refuse_existing([paths.png, paths.pdf, paths.json], overwrite)
    fig = plot_faces_prediction(result, title=f"{result.source}")
    payload = {**result.to_dict(), "checkpoints": checkpoints or []}
    if conformal is not None:
        from emenet.conformal.report_text import conformal_lines
        payload["conformal"] = {**conformal_settings.describe(),
                                "frames": json.loads(conformal.to_json(orient="records"))}
        fig.text(0.01, 0.005, "\n".join(conformal_lines(conformal.iloc[0], conformal_settings.coverage)),
                 fontsize=7, family="monospace", va="bottom", ha="left",
                 bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "#9e9e9e"})
    with contextlib.ExitStack() as stack:
        png, pdf, js = (stack.enter_context(atomic_path(p)) for p in (paths.png, paths.pdf, paths.json))
        fig.savefig(png, format="png", dpi=150)
        fig.savefig(pdf, format="pdf")
        js.write_text(json.dumps(payload, indent=2) + "\n")
    return paths


def format_image_prediction(result: ImagePrediction) -> str:
    """A plain-text table of a photo's predictions (every face), for the terminal."""
    p = result.predictions
    lines = [f"image: {result.source} ({result.image_shape[1]}x{result.image_shape[0]}), "
             + ("aligned 112x112 crop used as is" if result.aligned_input else
                f"{result.num_faces} face(s) detected, {len(result.faces)} predicted"),
             f"models: {p.num_models} "
             f"({'ensemble: uncertainty = aleatoric + epistemic' if p.is_ensemble else 'uncertainty = aleatoric'})"]
    for face in result.faces:
        if not result.aligned_input:
            lines.append(f"face {face.index}: box {np.round(face.box).astype(int).tolist()}"
                         + (" (largest)" if face.index == result.main_index and len(result.faces) > 1 else ""))
        lines += ["  " + line for line in _format_face(face.predictions)]
    return "\n".join(lines)


def _format_face(p: FramePredictions) -> list[str]:
    lines: list[str] = []
    d = p.frame_dict(0)

    def unc(u: dict) -> str:
        s = f"{u['total']:.3f}"
        return s + (f" (aleatoric {u['aleatoric']:.3f}, epistemic {u['epistemic']:.3f})" if "epistemic" in u else "")

    if "EXPR" in d:
        e = d["EXPR"]
        lines.append(f"expression: {e['name']} (p={e['probs'][e['name']]:.3f}), uncertainty {unc(e['uncertainty'])}")
        lines.append("  " + ", ".join(f"{k} {v:.3f}" for k, v in e["probs"].items()))
    if "VA" in d:
        for name, v in d["VA"].items():
            lines.append(f"{name}: {v['value']:+.3f}, uncertainty {unc(v['uncertainty'])}")
    if "AU" in d:
        lines.append("action units (prob, active, uncertainty):")
        for name, a in d["AU"].items():
            lines.append(f"  {name:<5} {a['prob']:.3f} {'yes' if a['active'] else 'no ':<3}  {unc(a['uncertainty'])}")
    if "landmarks" in d:
        lines.append("landmarks: 68 points predicted by the face-alignment head (drawn on the picture)")
    return lines


# ------------------------------------------------------------------------------- video

@dataclass(frozen=True)
class VideoOutputs:
    csv: Path
    video: Path
    timeline: Path
    result: MultiTrackPrediction  # every predicted track
    seconds: float  # wall time of the whole run
    report: Path | None = None  # the interactive HTML report, when asked for
    stages: dict[str, dict[str, float]] = field(default_factory=dict)  # StageClock.summary(): busy s per stage

    @property
    def prediction(self) -> VideoPrediction:
        """The main (most persistent) face's predictions."""
        return self.result.main

    @property
    def frames_per_second(self) -> float:
        return self.result.num_frames / max(self.seconds, 1e-9)

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.csv, self.video, self.timeline) + ((self.report,) if self.report is not None else ())


def report_path(output_dir: str | os.PathLike, video_path: str | os.PathLike) -> Path:
    """`<stem>_report.html`, the interactive report of `emenet predict --report`."""
    return Path(output_dir) / f"{Path(video_path).stem}_report.html"


def video_output_paths(output_dir: str | os.PathLike, video_path: str | os.PathLike) -> tuple[Path, Path, Path]:
    out, stem = Path(output_dir), Path(video_path).stem
    return out / f"{stem}_predictions.csv", out / f"{stem}_annotated.mp4", out / f"{stem}_timeline.png"


# x264's preset for the annotated video. "ultrafast" takes about half of "veryfast"'s CPU, colour
# conversion included (309 annotated 940x360 frames of utterance_1: 0.58 against 1.22 s, load 3-5),
# which the 2-core video pipeline needs; the file is a plain H.264 MP4 of the same frames at the same
# quality (crf 23: PSNR to the drawn frames 32.9 against 31.9 dB), about 4.5 times larger (no CABAC,
# B-frames or deblocking).
ANNOTATED_VIDEO_PRESET = "ultrafast"


class _AnnotatedWriter:
    """on_chunk callback of predict_video_tracks: draws every decoded frame (a box and a panel
    per predicted track) and encodes it."""

    def __init__(self, path: Path, tasks: tuple[str, ...], preset: str = ANNOTATED_VIDEO_PRESET):
        self.path = path
        self.tasks = tasks
        self.preset = preset
        self.writer: VideoWriter | None = None
        self.height = 0
        self.last: dict[int, FramePredictions] = {}  # track -> its latest face frame's prediction (one row)

    def __call__(self, chunk: PredictedChunk, tracks: VideoTracks, geometries: list[TrackGeometry]) -> None:
        frames = chunk.frames
        if self.writer is None:
            h, w = frames.frames.shape[1:3]
            self.height = max(h, panel_height(self.tasks))
            self.writer = VideoWriter(self.path, tracks.meta.rate, w + PANEL_WIDTH * len(geometries), self.height,
                                      preset=self.preset)
        rows = {part.track_id: np.cumsum(part.face_found) - 1 for part in chunk.tracks}
        for k, frame in enumerate(frames.frames):
            index = frames.start + k
            overlays = []
            for part, g in zip(chunk.tracks, geometries):
                tid = part.track_id
                if part.face_found[k]:
                    self.last[tid] = part.predictions.take(slice(rows[tid][k], rows[tid][k] + 1))
                    overlays.append(TrackOverlay(tid, g.boxes[index], g.regions[index], self.last[tid],
                                                 f"frame {index}   t = {frames.times[k]:.2f} s"))
                elif tid in self.last:
                    overlays.append(TrackOverlay(tid, None, None, self.last[tid],
                                                 f"frame {index}: no face (last shown)", stale=True))
                else:
                    overlays.append(TrackOverlay(tid, None, None, None, f"frame {index}: no face yet"))
            self.writer.write(annotate_tracks(frame, overlays, self.height))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def predict_video_to_files(predictor: Predictor, video_path: str | os.PathLike, output_dir: str | os.PathLike,
                           overwrite: bool = False, detector: FaceDetector | None = None,
                           tracker: FaceTracker | None = None, smooth_sigma: float = DEFAULT_SMOOTH_SIGMA,
                           progress: bool | FrameProgress = True, main_face: bool = False,
                           min_track_length: int = DEFAULT_MIN_TRACK_LENGTH, report: bool = False,
                           plotly_js: str | bool = True, concurrent: bool = True) -> VideoOutputs:
    """Predict every face track of a raw video (only the main one with `main_face`) and write,
    in `output_dir`:

    - `<stem>_predictions.csv`: per track, one row per video frame: track, frame, time,
      face_found, the face box, every probability, prediction and uncertainty (frames without
      that face repeat its nearest earlier face frame's predictions; the first available before
      its first face);
    - `<stem>_annotated.mp4`: the video with each track's box and id and one side panel of
      predictions and uncertainty bars per track, same frame count and rate;
    - `<stem>_timeline.png`: per track, valence and arousal with bands, uncertainty, expressions, AUs.

    With `report`, also `<stem>_report.html` (emenet.viz.report.video_report: interactive charts and
    face crops; `plotly_js` True embeds Plotly's script, a relative path references it).

    The files appear together or not at all (each is written to a temporary name first).
    `concurrent`: see `predict_video_tracks`; the outputs' `stages` give each stage's busy time.
    """
    start = time.perf_counter()
    clock = StageClock()
    csv_path, mp4_path, png_path = video_output_paths(output_dir, video_path)
    html_path = report_path(output_dir, video_path)
    _refuse_existing([csv_path, mp4_path, png_path] + ([html_path] if report else []), overwrite)
    if report:
        from emenet.extras import require
        require("plotly")
    if not Path(video_path).is_file():
        raise EMENetInputError(f"{video_path}: video not found")
    with contextlib.ExitStack() as stack:
        tmp_csv, tmp_mp4, tmp_png = (stack.enter_context(atomic_path(p)) for p in (csv_path, mp4_path, png_path))
        writer = _AnnotatedWriter(tmp_mp4, predictor.tasks)
        thumbs = None
        if report:
            from emenet.viz.report.thumbnails import ThumbnailCollector
            thumbs = ThumbnailCollector()

        def on_chunk(chunk, tracks, geometries) -> None:  # the writer, and the report's face crops
            writer(chunk, tracks, geometries)
            if thumbs is not None:
                thumbs(chunk, tracks, geometries)
        def write_table_and_timeline(result: MultiTrackPrediction) -> None:  # while the MP4's last frames encode
            with clock.timed("tables", result.num_frames):
                table = result.to_dataframe()
                if getattr(predictor, "conformal", None) is not None:  # EXPR_set, AU<k>_set, valence_lo/hi, ...
                    table = predictor.conformal.add_columns(table)
                table.to_csv(tmp_csv, index=False, float_format="%.6g")
            with clock.timed("timeline", result.num_frames):
                plot_timeline(result, conformal=getattr(predictor, "conformal", None)).savefig(
                    tmp_png, format="png", dpi=120)
        try:
            result = predict_video_tracks(predictor, video_path, detector=detector, tracker=tracker,
                                          smooth_sigma=smooth_sigma, progress=progress, main_face=main_face,
                                          min_track_length=min_track_length, on_chunk=on_chunk, clock=clock,
                                          concurrent=concurrent, on_predicted=write_table_and_timeline)
        finally:
            with clock.timed("write"):
                writer.close()
        if report:
            from emenet.viz.report.video_report import video_report_html
            tmp_html = stack.enter_context(atomic_path(html_path))
            # the page shows exactly the CSV's numbers: rebuilt from the file just written
            written = pd.read_csv(tmp_csv, keep_default_na=False, na_values=[""])
            summary = (f"{result.num_frames} frames, {len(result.predictions)} face track(s), "
                       f"{predictor.num_models} model(s)")
            tmp_html.write_text(video_report_html(written, title=Path(video_path).name, thumbs=thumbs.thumbs,
                                                  plotly_js=plotly_js, summary=summary), encoding="utf-8")
    seconds = time.perf_counter() - start
    stages = clock.summary()
    log.info("%s: %d frames, %d track(s) in %.1f s (%.1f frames/s) -> %s; busy s per stage: %s", video_path,
             result.num_frames, len(result.predictions), seconds, result.num_frames / max(seconds, 1e-9),
             Path(output_dir), ", ".join(f"{k} {v['seconds']:.2f}" for k, v in stages.items()))
    return VideoOutputs(csv_path, mp4_path, png_path, result, seconds, html_path if report else None, stages)
