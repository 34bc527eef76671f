"""Raw video -> the main face's predictions for every frame, decoded in chunks (memory flat).

Two passes over the file, each decoding with PyAV a chunk of frames at a time:

1. detect faces in every frame and link them into tracks (`track_video_faces`); the main
   subject is the most persistent track, so a face printed on a t-shirt that the detector
   finds now and then does not become the subject;
2. decode again, crop the subject's face with its boxes smoothed over time, and predict the
   crops chunk by chunk, carrying the models' hidden state (`iter_face_predictions`).

Only boxes and predictions are kept for the whole video (a few hundred bytes per frame),
never frames. Frames where the subject's face was not found are marked (`face_found`);
outputs that need every frame take the prediction of the nearest earlier frame with a face
(the first available one before the first face), as the challenge's submission format does.

    >>> result = predict_video(predictor, "utterance_1.mp4")  # doctest: +SKIP
    >>> result.to_dataframe().head()  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from emenet.errors import EMENetInputError
from emenet.face.align import crop_face, crop_regions
from emenet.face.detector import FaceDetector, HaarFaceDetector
from emenet.face.tracking import FaceTracker, Track, select_main_track, smooth_track_boxes
from emenet.inference.predictor import Predictor
from emenet.inference.results import FramePredictions
from emenet.models.mobilefacenet import INPUT_SIZE

log = logging.getLogger(__name__)

DEFAULT_SMOOTH_SIGMA = 2.0  # frames; Gaussian smoothing of the subject's boxes (see smooth_track_boxes)


# ------------------------------------------------------------------------------ decoding

@dataclass(frozen=True)
class VideoMeta:
    """What the outputs need from a video's headers."""

    path: str
    fps: float
    rate: Fraction  # the exact frame rate, for the annotated video
    width: int
    height: int
    num_frames_hint: int | None  # the container's count, if it records one (progress bars only)


def _open(path: str | os.PathLike) -> av.container.InputContainer:
    path = Path(path)
    if not path.is_file():
        raise EMENetInputError(f"{path}: video not found")
    try:
        container = av.open(str(path))
    except (OSError, av.error.FFmpegError) as exc:
        raise EMENetInputError(f"{path}: cannot be decoded as a video ({type(exc).__name__}: {str(exc)[:160]})") from None
    if not container.streams.video:
        container.close()
        raise EMENetInputError(f"{path}: the file has no video stream")
    return container


def read_video_meta(path: str | os.PathLike) -> VideoMeta:
    with _open(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(30)
        return VideoMeta(str(path), float(rate), Fraction(rate), stream.codec_context.width,
                         stream.codec_context.height, stream.frames or None)


@dataclass(frozen=True)
class FrameChunk:
    """Consecutive decoded frames: indices start..start+n-1, (n, H, W, 3) uint8 RGB, times in s."""

    start: int
    frames: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def iter_video_chunks(path: str | os.PathLike, chunk_size: int = 64, progress: bool = False,
                      desc: str = "decoding") -> Iterator[FrameChunk]:
    """Decode the first video stream as RGB, `chunk_size` frames at a time.

    Raises EMENetInputError when the file cannot be decoded or holds no frame.
    """
    meta = read_video_meta(path)
    container = _open(path)
    count = 0
    bar = tqdm(total=meta.num_frames_hint, unit="frame", desc=desc, disable=not progress, leave=False)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames: list[np.ndarray] = []
        times: list[float] = []
        try:
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24"))  # RGB, never OpenCV's BGR
                times.append(frame.time if frame.time is not None else (count + len(times)) / meta.fps)
                if len(frames) == chunk_size:
                    yield FrameChunk(count, np.stack(frames), np.asarray(times))
                    count += len(frames)
                    bar.update(len(frames))
                    frames, times = [], []
        except av.error.FFmpegError as exc:
            raise EMENetInputError(f"{path}: decoding failed after {count + len(frames)} frames "
                                   f"({type(exc).__name__}: {str(exc)[:160]})") from None
        if frames:
            yield FrameChunk(count, np.stack(frames), np.asarray(times))
            count += len(frames)
            bar.update(len(frames))
        if count == 0:
            raise EMENetInputError(f"{path}: the video has no decodable frames")
    finally:
        bar.close()
        container.close()


# ------------------------------------------------------------------------ pass 1: tracks

@dataclass
class VideoTracks:
    """Every face track of a video, with the time of every frame."""

    meta: VideoMeta
    times: np.ndarray  # (N,) seconds
    tracks: list[Track] = field(default_factory=list)
    main_track_id: int | None = None

    @property
    def num_frames(self) -> int:
        return len(self.times)

    def main_track(self) -> Track | None:
        return None if self.main_track_id is None else self.tracks[self.main_track_id]


def track_video_faces(path: str | os.PathLike, detector: FaceDetector | None = None,
                      tracker: FaceTracker | None = None, chunk_size: int = 64, progress: bool = True) -> VideoTracks:
    """Pass 1: detect faces in every frame and link them into tracks."""
    detector = detector or HaarFaceDetector()
    tracker = tracker or FaceTracker()
    meta = read_video_meta(path)
    times: list[np.ndarray] = []
    with tqdm(total=meta.num_frames_hint, unit="frame", desc="detecting faces", disable=not progress) as bar:
        for chunk in iter_video_chunks(path, chunk_size):
            for k, frame in enumerate(chunk.frames):
                tracker.update(chunk.start + k, detector(frame))
            times.append(chunk.times)
            bar.update(len(chunk))
    main = tracker.main_track()
    return VideoTracks(meta, np.concatenate(times), tracker.tracks, None if main is None else main.track_id)


def track_crop_geometry(track: Track, num_frames: int, smooth_sigma: float = DEFAULT_SMOOTH_SIGMA
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(face_found (N,), boxes (N, 4), regions (N, 3)) of one track; NaN where it has no face."""
    face_found = np.zeros(num_frames, bool)
    boxes = np.full((num_frames, 4), np.nan, np.float32)
    frames = track.frame_array()
    face_found[frames] = True
    boxes[frames] = smooth_track_boxes(frames, track.box_array(), smooth_sigma)
    regions = crop_regions(boxes).astype(np.float32)  # NaN rows stay NaN
    return face_found, boxes, regions


# ------------------------------------------------------------------ pass 2: predictions

@dataclass(frozen=True)
class PredictedChunk:
    """Decoded frames with the subject's predictions for those of them that show the face."""

    frames: FrameChunk
    face_found: np.ndarray  # (n,) bool
    predictions: FramePredictions  # face_found.sum() rows, in frame order


def iter_face_predictions(predictor: Predictor, path: str | os.PathLike, face_found: np.ndarray, regions: np.ndarray,
                          chunk_size: int | None = None, progress: bool = True) -> Iterator[PredictedChunk]:
    """Pass 2: crop `regions` (N, 3) where `face_found` and predict them as one sequence."""
    chunk_size = chunk_size or predictor.batch_size
    state = predictor.new_state()
    with tqdm(total=len(face_found), unit="frame", desc="predicting", disable=not progress) as bar:
        for chunk in iter_video_chunks(path, chunk_size):
            n = len(chunk)
            found = np.zeros(n, bool)
            valid = min(n, max(0, len(face_found) - chunk.start))  # a second decode may see extra frames
            found[:valid] = face_found[chunk.start:chunk.start + valid]
            local = np.flatnonzero(found)
            crops = np.empty((len(local), INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
            for j, k in enumerate(local):  # one warp per frame: OpenCV works image by image
                crops[j] = crop_face(chunk.frames[k], regions[chunk.start + k])
            predictions, state = predictor.predict_frames(crops, state)
            yield PredictedChunk(chunk, found, predictions)
            bar.update(n)


# ---------------------------------------------------------------------------- encoding

class VideoWriter:
    """Encode RGB frames to an MP4 with PyAV (H.264 when available, else MPEG-4 Part 2).

    Frames are (H, W, 3) uint8 RGB of one size; odd sizes are padded by one black pixel
    (4:2:0 chroma needs even sizes). Use as a context manager; `close` flushes the encoder.
    """

    def __init__(self, path: str | os.PathLike, rate: Fraction, width: int, height: int, crf: int = 23):
        self.width, self.height = width, height
        self._container = av.open(str(path), mode="w", format="mp4")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self._stream = self._container.add_stream(codec, rate=rate)
        self._stream.width, self._stream.height = width + width % 2, height + height % 2
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        self.frames_written = 0

    def write(self, frame: np.ndarray) -> None:
        if frame.shape != (self.height, self.width, 3):
            raise ValueError(f"expected a ({self.height}, {self.width}, 3) frame, got {frame.shape}")
        if self.width % 2 or self.height % 2:
            frame = np.pad(frame, ((0, self.height % 2), (0, self.width % 2), (0, 0)))
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(video_frame):
            self._container.mux(packet)
        self.frames_written += 1

    def close(self) -> None:
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def count_video_frames(path: str | os.PathLike) -> int:
    """Number of frames of a video, by decoding it (container counts can be missing or wrong)."""
    with _open(path) as container:
        return sum(1 for _ in container.decode(container.streams.video[0]))


# ---------------------------------------------------------------------------- the result

def fill_index(face_found: np.ndarray) -> np.ndarray:
    """(N,) row of the face predictions each frame shows: the nearest earlier face frame's,
    the first one's before the first face. Needs at least one face frame.

    >>> fill_index(np.array([False, True, False, True])).tolist()
    [0, 0, 0, 1]
    """
    index = np.cumsum(face_found) - 1
    return np.clip(index, 0, None)


@dataclass(frozen=True)
class VideoPrediction:
    """The subject's predictions for a whole video.

    `face_predictions` has one row per frame with a face (`face_found`), `frame_predictions`
    one row per video frame (gaps filled from the nearest earlier face frame). `boxes` are the
    subject's smoothed detector boxes `[x0, y0, x1, y1]` and `regions` its crop squares
    `(cx, cy, side)`, NaN where no face was found. `tracks` holds every face track.
    """

    meta: VideoMeta
    times: np.ndarray
    face_found: np.ndarray
    boxes: np.ndarray
    regions: np.ndarray
    face_predictions: FramePredictions
    track_id: int
    tracks: list[Track]

    @property
    def num_frames(self) -> int:
        return len(self.times)

    @property
    def frame_predictions(self) -> FramePredictions:
        return self.face_predictions.take(fill_index(self.face_found))

    def to_dataframe(self) -> pd.DataFrame:
        """One row per video frame: frame, time, face_found, face box, then every prediction."""
        head = pd.DataFrame({"frame": np.arange(self.num_frames), "time": self.times, "face_found": self.face_found,
                             "box_x0": self.boxes[:, 0], "box_y0": self.boxes[:, 1],
                             "box_x1": self.boxes[:, 2], "box_y1": self.boxes[:, 3]})
        return pd.concat([head, self.frame_predictions.to_dataframe()], axis=1)


def predict_video(predictor: Predictor, path: str | os.PathLike, detector: FaceDetector | None = None,
                  tracker: FaceTracker | None = None, smooth_sigma: float = DEFAULT_SMOOTH_SIGMA,
                  chunk_size: int | None = None, progress: bool = True,
                  select_track: Callable[[list[Track]], Track | None] = select_main_track,
                  on_chunk: Callable[[PredictedChunk, VideoTracks, np.ndarray], None] | None = None) -> VideoPrediction:
    """Track the faces of a video and predict every frame of one of them (the main face).

    `select_track(tracks)` picks the subject among all tracks (default: the most persistent).
    `on_chunk(chunk, tracks, boxes)` is called for each predicted chunk of decoded frames
    (the annotated-video writer uses it, so frames are decoded twice, not three times).
    Raises EMENetInputError when the video cannot be decoded, has no frames, or no face.
    """
    chunk_size = chunk_size or predictor.batch_size
    tracks = track_video_faces(path, detector, tracker, chunk_size=chunk_size, progress=progress)
    subject = select_track(tracks.tracks)
    if subject is None:
        raise EMENetInputError(f"{path}: no face found in any of its {tracks.num_frames} frames")
    face_found, boxes, regions = track_crop_geometry(subject, tracks.num_frames, smooth_sigma)
    log.info("%s: %d frames, %d face track(s); subject track %d has a face in %d frames", path, tracks.num_frames,
             len(tracks.tracks), subject.track_id, int(face_found.sum()))
    parts = []
    for chunk in iter_face_predictions(predictor, path, face_found, regions, chunk_size, progress):
        if on_chunk is not None:
            on_chunk(chunk, tracks, boxes)
        parts.append(chunk.predictions)
    return VideoPrediction(tracks.meta, tracks.times, face_found, boxes, regions, FramePredictions.concatenate(parts),
                           subject.track_id, tracks.tracks)
