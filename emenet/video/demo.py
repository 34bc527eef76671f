"""Live demo: a webcam or a video file -> the followed face's predictions, drawn, shown and recorded.

Each frame goes through small functions: `open_source` reads it, `FaceFollower` finds the face
to follow, `demo_step` predicts it, `draw_demo_frame` draws the box, the predictions with their
uncertainty bars and the frames per second, and `open_recorder` writes the result.

The models are recurrent, so the followed face is one sequence: its hidden state is carried
from frame to frame while the same face track is followed (through short detection gaps, where
nothing is fed and the last prediction is shown greyed out) and restarts when the track has
been lost for longer than `lost_after` frames and another face (or the same one again) becomes
the followed one. Among several faces the follower keeps the one it follows unless another
is seen much more often and more surely (see `FaceFollower`), so a face printed on a t-shirt,
which a detector finds now and then and with few supporting detections, does not take over.

    >>> predictor = Predictor.from_names(["teacher_exp_0"], [4], "checkpoints")  # doctest: +SKIP
    >>> summary = run_demo(predictor, "utterance_1.mp4", save_file="output.avi", show=False)  # doctest: +SKIP
    >>> summary.frames_per_second  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from emenet.errors import EMENetInputError
from emenet.io_utils import atomic_path, ensure_folder
from emenet.face.align import alignment_transforms, crop_aligned, crop_face, crop_regions, transform_regions
from emenet.face.detector import Detections, FaceDetector, default_detector
from emenet.face.tracking import FaceTracker
from emenet.viz.drawing import annotate_frame, panel_height
from emenet.inference.predictor import PredictionStream, Predictor
from emenet.inference.results import FramePredictions

log = logging.getLogger(__name__)

DEFAULT_CAMERA_FPS = 30.0  # recording rate when a camera reports none
DEFAULT_BOX_SMOOTHING = 0.5  # weight of the new detection in the followed box's running mean
WINDOW_NAME = "EMENet (q quits)"
# FourCC of cv2.VideoWriter per file suffix; MJPG is built into OpenCV, so .avi always works.
FOURCC_BY_SUFFIX = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "MJPG"}


# ------------------------------------------------------------------------------- input

@dataclass
class FrameSource:
    """An opened camera or video file; `read()` gives (H, W, 3) uint8 RGB frames, None at the end."""

    capture: cv2.VideoCapture
    name: str
    is_camera: bool
    fps: float
    width: int
    height: int
    num_frames: int | None  # a file's frame count as its container reports it (progress only)

    def read(self) -> np.ndarray | None:
        ok, frame = self.capture.read()
        if not ok or frame is None:
            return None
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.capture.release()


def parse_source(source: str | int) -> str | int:
    """A camera index (`0`, `"1"`) as an int, anything else as a path or URL string."""
    if isinstance(source, int):
        return source
    text = str(source).strip()
    return int(text) if text.isdigit() else text


def open_source(source: str | int) -> FrameSource:
    """Open a camera (an index, e.g. 0) or a video file; one-line EMENetInputError if it cannot be."""
    source = parse_source(source)
    is_camera = isinstance(source, int)
    if not is_camera and "://" not in source and not Path(source).is_file():
        raise EMENetInputError(f"{source}: video source cannot be opened (file not found)")
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        capture.release()
        what = f"camera {source}" if is_camera else str(source)
        raise EMENetInputError(f"{what}: video source cannot be opened")
    fps = capture.get(cv2.CAP_PROP_FPS)
    fps = float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else DEFAULT_CAMERA_FPS
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return FrameSource(capture, f"camera {source}" if is_camera else str(source), is_camera, fps,
                       int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                       count if count > 0 and not is_camera else None)


# ------------------------------------------------------------------------- face to follow

@dataclass(frozen=True)
class FollowedFace:
    """Where the followed face is in one frame: `box` None when it was not detected there;
    `new_sequence` when this frame starts a new face sequence (reset the hidden state)."""

    track_id: int | None
    box: np.ndarray | None
    new_sequence: bool
    points: np.ndarray | None = None  # (P, 2) smoothed landmarks, from a landmark detector


class FaceFollower:
    """Online choice of the one face to follow, over `FaceTracker` tracks.

    A track's *presence* is the sum, over its detections in the last `window` frames, of
    1 + the detector's score (a Haar box's neighbour count): how often and how surely the
    face was seen lately. The followed track is kept while it is seen at least every
    `lost_after` frames, unless another face detected in the frame has more than
    `switch_ratio` times its presence; then, or when it is lost, the face of the frame with
    the most presence becomes the followed one and a new sequence starts. The followed box
    is a running mean of its detections (`smoothing` = weight of the newest), and so are its
    landmarks (BlazeFace's points, which the crop is aligned on), which steadies the crop.
    """

    def __init__(self, tracker: FaceTracker | None = None, lost_after: int | None = None, window: int = 30,
                 switch_ratio: float = 2.0, smoothing: float = DEFAULT_BOX_SMOOTHING):
        if not 0 < smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], got {smoothing}")
        if switch_ratio < 1:
            raise ValueError(f"switch_ratio must be at least 1, got {switch_ratio}")
        self.tracker = tracker or FaceTracker()
        # By default lost exactly when the tracker can no longer extend the track (max_gap frames missed).
        self.lost_after = self.tracker.max_gap + 1 if lost_after is None else lost_after
        self.window = window
        self.switch_ratio = switch_ratio
        self.smoothing = smoothing
        self.track_id: int | None = None
        self.sequences = 0  # how many face sequences were started
        self._box: np.ndarray | None = None
        self._points: np.ndarray | None = None

    def presence(self, track_id: int, frame_index: int) -> float:
        """Sum of 1 + score over the track's detections in the last `window` frames."""
        track = self.tracker.tracks[track_id]
        total = 0.0
        for frame, score in zip(reversed(track.frames), reversed(track.scores)):
            if frame_index - frame >= self.window:
                break
            total += 1.0 + max(score, 0.0)
        return total

    def update(self, frame_index: int, detections: Detections) -> FollowedFace:
        ids = self.tracker.update(frame_index, detections)
        if self.track_id is not None and frame_index - self.tracker.tracks[self.track_id].last_frame > self.lost_after:
            log.debug("frame %d: face track %d lost", frame_index, self.track_id)
            self.track_id, self._box, self._points = None, None, None
        new_sequence = False
        if ids:
            presence = {i: self.presence(i, frame_index) for i in ids}
            best = max(ids, key=lambda i: presence[i])
            current = 0.0 if self.track_id is None else self.presence(self.track_id, frame_index)
            if best != self.track_id and (self.track_id is None or presence[best] > self.switch_ratio * current):
                log.debug("frame %d: following face track %d (was %s)", frame_index, best, self.track_id)
                self.track_id, self._box, self._points, new_sequence = best, None, None, True
                self.sequences += 1
        if self.track_id is None or self.track_id not in ids:
            return FollowedFace(self.track_id, None, False)
        index = ids.index(self.track_id)
        box = np.asarray(detections.boxes[index], np.float64)
        self._box = box if self._box is None else self.smoothing * box + (1 - self.smoothing) * self._box
        if detections.points is None:
            self._points = None
        else:
            points = np.asarray(detections.points[index], np.float64)
            self._points = (points if self._points is None
                            else self.smoothing * points + (1 - self.smoothing) * self._points)
        return FollowedFace(self.track_id, self._box.astype(np.float32), new_sequence,
                            None if self._points is None else self._points.astype(np.float32))


# ------------------------------------------------------------------------------ one step

@dataclass(frozen=True)
class DemoStep:
    """One frame's outcome: the followed face's box and crop region (None without a face here),
    the predictions shown (one row; an earlier frame's when `stale`), the track followed."""

    index: int
    box: np.ndarray | None
    region: np.ndarray | None
    predictions: FramePredictions | None
    stale: bool
    track_id: int | None
    new_sequence: bool


def demo_step(index: int, frame: np.ndarray, detector: FaceDetector, follower: FaceFollower,
              stream: PredictionStream, last: FramePredictions | None = None) -> DemoStep:
    """Detect, follow, crop and predict one RGB frame; `last` is the previous step's predictions,
    shown again (stale) when the followed face is not found in this frame."""
    face = follower.update(index, detector(frame))
    if face.new_sequence or face.track_id is None:
        stream.reset()  # a new face sequence (or none): no hidden state carried over
        last = None
    if face.box is None:
        return DemoStep(index, None, None, last, last is not None, face.track_id, False)
    if face.points is not None:  # landmark-aligned like the training crops (emenet.face.align)
        affine = alignment_transforms(face.points[None])
        region, crop = transform_regions(affine)[0], crop_aligned(frame, affine[0])
    else:
        region = crop_regions(face.box)
        crop = crop_face(frame, region)
    predictions = stream(crop)  # (1 row): the sequence goes on
    return DemoStep(index, face.box, region, predictions, False, face.track_id, face.new_sequence)


class FpsMeter:
    """Frames per second over a sliding window of the last `window` frames."""

    def __init__(self, window: int = 30):
        self.window = window
        self._times: list[float] = []

    def tick(self) -> float:
        now = time.perf_counter()
        self._times = (self._times + [now])[-(self.window + 1):]
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)


def draw_demo_frame(frame: np.ndarray, step: DemoStep, fps: float, height: int | None = None) -> np.ndarray:
    """The frame with the followed face's box and a side panel of predictions, uncertainty bars
    and the frames per second: (height, W + PANEL_WIDTH, 3) uint8 RGB."""
    if step.box is not None:
        status = f"{fps:5.1f} fps   frame {step.index}   face {step.track_id}"
    elif step.predictions is not None:
        status = f"{fps:5.1f} fps   frame {step.index}: no face (last shown)"
    else:
        status = f"{fps:5.1f} fps   frame {step.index}: no face"
    return annotate_frame(frame, step.box, step.predictions, 0, step.region, status=status, stale=step.stale,
                          height=height)


# ----------------------------------------------------------------------------- output

def check_recording_path(path: str | os.PathLike, overwrite: bool = False) -> None:
    """One line, before any work, for a recording that could not be written: an unknown format,
    an existing file without `overwrite`, a folder in its place."""
    path = Path(path)
    if path.suffix.lower() not in FOURCC_BY_SUFFIX:
        raise EMENetInputError(f"{path}: unsupported recording format; use one of {sorted(FOURCC_BY_SUFFIX)}")
    if path.is_dir():
        raise EMENetInputError(f"{path}: is a folder; give a file to record to (e.g. output.avi)")
    if path.exists() and not overwrite:
        raise EMENetInputError(f"{path} already exists; pass --overwrite to replace it")


def open_recorder(path: str | os.PathLike, fps: float, width: int, height: int,
                  name: str | os.PathLike | None = None) -> cv2.VideoWriter:
    """A cv2.VideoWriter for RGB frames of (height, width); codec by suffix (.avi: MJPG, .mp4: mp4v).

    `name` is the file the user asked for, when `path` is a temporary file standing in for it.
    """
    path = Path(path)
    name = Path(name or path)
    fourcc = FOURCC_BY_SUFFIX.get(path.suffix.lower())
    if fourcc is None:
        raise EMENetInputError(f"{name}: unsupported recording format; use one of {sorted(FOURCC_BY_SUFFIX)}")
    ensure_folder(path.parent)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (int(width), int(height)))
    if not writer.isOpened():
        writer.release()
        raise EMENetInputError(f"{name}: cannot be opened for recording ({fourcc})")
    return writer


def write_frame(writer: cv2.VideoWriter, image: np.ndarray) -> None:
    """Append one RGB image (OpenCV writes BGR)."""
    writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def show_frame(image: np.ndarray) -> bool:
    """Show one RGB image in the demo window; False once `q` (or Esc) was pressed."""
    try:
        cv2.imshow(WINDOW_NAME, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1) & 0xFF
    except cv2.error:
        raise EMENetInputError("cannot open a window: this OpenCV has no GUI support (e.g. opencv-python-headless); "
                               "run with --headless --save_file output.avi") from None
    return key not in (ord("q"), 27)


# -------------------------------------------------------------------------------- loop

@dataclass(frozen=True)
class DemoSummary:
    frames: int
    frames_with_face: int
    sequences: int  # face sequences started (hidden-state restarts)
    seconds: float
    save_file: Path | None

    @property
    def frames_per_second(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def run_demo(predictor: Predictor, source: str | int | FrameSource = 0, save_file: str | os.PathLike | None = None,
             show: bool = True, max_frames: int | None = None, detector: FaceDetector | None = None,
             follower: FaceFollower | None = None, progress: bool = False, overwrite: bool = False) -> DemoSummary:
    """Run the demo until the source ends, `max_frames` frames, or `q` in the window.

    `source` is a camera index, a video file or an opened `FrameSource` (closed at the end).
    `show=False` (headless) only records, to `save_file`. Raises EMENetInputError (one line)
    when the source cannot be opened, gives no frame, or the recording cannot be written.
    The recording is written to a temporary file beside `save_file` and renamed when the demo
    ends; an existing `save_file` is replaced only with `overwrite`.
    """
    if not show and save_file is None:
        raise EMENetInputError("headless mode only records: give a file to record to (--save_file output.avi)")
    if max_frames is not None and max_frames < 1:
        raise EMENetInputError(f"max_frames must be at least 1, got {max_frames}")
    if save_file is not None:
        check_recording_path(save_file, overwrite)
    detector = detector or default_detector()
    follower = follower or FaceFollower()
    stream = predictor.stream()
    source = source if isinstance(source, FrameSource) else open_source(source)
    writer: cv2.VideoWriter | None = None
    meter = FpsMeter()
    frames = with_face = 0
    start = time.perf_counter()
    total = source.num_frames if max_frames is None else min(max_frames, source.num_frames or max_frames)
    bar = tqdm(total=total, unit="frame", desc="demo", disable=not progress)
    with contextlib.ExitStack() as recording:  # the recording appears under its name only on success
        record_to = None if save_file is None else recording.enter_context(
            atomic_path(save_file, overwrite, keep_suffix=True))
        try:
            last: FramePredictions | None = None
            height = None
            while max_frames is None or frames < max_frames:
                try:
                    frame = source.read()
                    if frame is None:
                        break
                    if height is None:
                        height = max(frame.shape[0], panel_height(predictor.tasks))
                    step = demo_step(frames, frame, detector, follower, stream, last)
                    last = step.predictions
                    with_face += step.box is not None
                    image = draw_demo_frame(frame, step, meter.tick(), height)
                    if record_to is not None:
                        if writer is None:
                            writer = open_recorder(record_to, source.fps, image.shape[1], image.shape[0], save_file)
                        write_frame(writer, image)
                    frames += 1
                    bar.update()
                    if show and not show_frame(image):
                        break
                except KeyboardInterrupt:  # Ctrl-C ends a headless camera run like `q` ends a shown one
                    log.info("interrupted after %d frames", frames)
                    break
        finally:
            bar.close()
            source.close()
            if writer is not None:
                writer.release()
            if show:
                try:
                    cv2.destroyAllWindows()
                except cv2.error:  # no GUI support: show_frame already said so
                    pass
        if frames == 0:
            raise EMENetInputError(f"{source.name}: no frames could be read")
    summary = DemoSummary(frames, with_face, follower.sequences, time.perf_counter() - start,
                          None if save_file is None else Path(save_file))
    log.info("%s: %d frames (face in %d) in %.1f s, %.1f frames/s%s", source.name, summary.frames,
             summary.frames_with_face, summary.seconds, summary.frames_per_second,
             f" -> {summary.save_file}" if summary.save_file else "")
    return summary
