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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emenet.errors import EMENetInputError
from emenet.face.detector import FaceDetector
from emenet.face.tracking import FaceTracker
from emenet.face.align import crop_regions
from emenet.inference.drawing import PANEL_WIDTH, annotate_frame, panel_height, plot_image_prediction
from emenet.inference.image import ImagePrediction
from emenet.inference.predictor import Predictor
from emenet.inference.results import FramePredictions
from emenet.inference.timeline import plot_timeline
from emenet.inference.video import (DEFAULT_SMOOTH_SIGMA, PredictedChunk, VideoPrediction, VideoTracks, VideoWriter,
                                    predict_video)
from emenet.io_utils import atomic_path

log = logging.getLogger(__name__)


def _refuse_existing(paths: list[Path], overwrite: bool) -> None:
    existing = [str(p) for p in paths if p.exists()]
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
                        overwrite: bool = False) -> ImageOutputs:
    """The figure as PNG and PDF and every number as JSON, named after the image."""
    stem = Path(result.source).stem if result.source != "array" else "image"
    paths = image_output_paths(output_dir, stem)
    _refuse_existing([paths.png, paths.pdf, paths.json], overwrite)
    fig = plot_image_prediction(result.crop, result.predictions, title=f"{result.source}")
    payload = {**result.to_dict(), "checkpoints": checkpoints or []}
    with contextlib.ExitStack() as stack:
        png, pdf, js = (stack.enter_context(atomic_path(p)) for p in (paths.png, paths.pdf, paths.json))
        fig.savefig(png, format="png", dpi=150)
        fig.savefig(pdf, format="pdf")
        js.write_text(json.dumps(payload, indent=2) + "\n")
    return paths


def format_image_prediction(result: ImagePrediction) -> str:
    """A plain-text table of a photo's predictions, for the terminal."""
    p = result.predictions
    lines = [f"image: {result.source} ({result.image_shape[1]}x{result.image_shape[0]}), "
             + ("aligned 112x112 crop used as is" if result.aligned_input else
                f"face box {np.round(result.box).astype(int).tolist()} ({result.num_faces} face(s) detected)"),
             f"models: {p.num_models} "
             f"({'ensemble: uncertainty = aleatoric + epistemic' if p.is_ensemble else 'uncertainty = aleatoric'})"]
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
    return "\n".join(lines)


# ------------------------------------------------------------------------------- video

@dataclass(frozen=True)
class VideoOutputs:
    csv: Path
    video: Path
    timeline: Path
    prediction: VideoPrediction
    seconds: float  # wall time of the whole run

    @property
    def frames_per_second(self) -> float:
        return self.prediction.num_frames / max(self.seconds, 1e-9)


def video_output_paths(output_dir: str | os.PathLike, video_path: str | os.PathLike) -> tuple[Path, Path, Path]:
    out, stem = Path(output_dir), Path(video_path).stem
    return out / f"{stem}_predictions.csv", out / f"{stem}_annotated.mp4", out / f"{stem}_timeline.png"


class _AnnotatedWriter:
    """on_chunk callback of predict_video: draws every decoded frame and encodes it."""

    def __init__(self, path: Path, tasks: tuple[str, ...]):
        self.path = path
        self.tasks = tasks
        self.writer: VideoWriter | None = None
        self.height = 0
        self.last: FramePredictions | None = None  # the latest face frame's prediction (one row)

    def __call__(self, chunk: PredictedChunk, tracks: VideoTracks, boxes: np.ndarray) -> None:
        frames = chunk.frames
        if self.writer is None:
            h, w = frames.frames.shape[1:3]
            self.height = max(h, panel_height(self.tasks))
            self.writer = VideoWriter(self.path, tracks.meta.rate, w + PANEL_WIDTH, self.height)
        rows = np.cumsum(chunk.face_found) - 1
        for k, frame in enumerate(frames.frames):
            index = frames.start + k
            if chunk.face_found[k]:
                self.last = chunk.predictions.take(slice(rows[k], rows[k] + 1))
                image = annotate_frame(frame, boxes[index], self.last, 0, crop_regions(boxes[index]),
                                       status=f"frame {index}   t = {frames.times[k]:.2f} s", height=self.height)
            elif self.last is not None:
                image = annotate_frame(frame, None, self.last, 0, status=f"frame {index}: no face (last shown)",
                                       stale=True, height=self.height)
            else:
                image = annotate_frame(frame, None, None, status=f"frame {index}: no face yet", height=self.height)
            self.writer.write(image)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def predict_video_to_files(predictor: Predictor, video_path: str | os.PathLike, output_dir: str | os.PathLike,
                           overwrite: bool = False, detector: FaceDetector | None = None,
                           tracker: FaceTracker | None = None, smooth_sigma: float = DEFAULT_SMOOTH_SIGMA,
                           progress: bool = True) -> VideoOutputs:
    """Predict a raw video's main face and write, in `output_dir`:

    - `<stem>_predictions.csv`: one row per video frame: frame, time, face_found, the face box,
      every probability, prediction and uncertainty (frames without a face repeat the nearest
      earlier face frame's predictions; the first available before the first face);
    - `<stem>_annotated.mp4`: the video with the face box and a side panel of predictions and
      uncertainty bars, same frame count and rate;
    - `<stem>_timeline.png`: valence and arousal with bands, uncertainty, expressions, AUs.
    """
    start = time.perf_counter()
    csv_path, mp4_path, png_path = video_output_paths(output_dir, video_path)
    _refuse_existing([csv_path, mp4_path, png_path], overwrite)
    if not Path(video_path).is_file():
        raise EMENetInputError(f"{video_path}: video not found")
    with contextlib.ExitStack() as stack:
        tmp_csv, tmp_mp4, tmp_png = (stack.enter_context(atomic_path(p)) for p in (csv_path, mp4_path, png_path))
        writer = _AnnotatedWriter(tmp_mp4, predictor.tasks)
        try:
            result = predict_video(predictor, video_path, detector=detector, tracker=tracker, smooth_sigma=smooth_sigma,
                                   progress=progress, on_chunk=writer)
        finally:
            writer.close()
        result.to_dataframe().to_csv(tmp_csv, index=False, float_format="%.6g")
        plot_timeline(result).savefig(tmp_png, format="png", dpi=120)
    seconds = time.perf_counter() - start
    log.info("%s: %d frames in %.1f s (%.1f frames/s) -> %s", video_path, result.num_frames, seconds,
             result.num_frames / max(seconds, 1e-9), Path(output_dir))
    return VideoOutputs(csv_path, mp4_path, png_path, result, seconds)
