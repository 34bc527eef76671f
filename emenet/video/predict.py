"""Raw video -> every face track's predictions for every frame, decoded in chunks (memory flat).

Two passes over the file, each decoding with PyAV a chunk of frames at a time:

1. detect faces in every frame and link them into tracks (`track_video_faces`); tracks that
   are too short to matter or that sit on another face's chest (a face printed on a t-shirt)
   are dropped (`emenet.face.tracking.filter_tracks`), the others are numbered 0, 1, ... in
   order of appearance; the main face is the most persistent track;
2. decode again, crop each kept track's face with its boxes smoothed over time, and predict
   the crops chunk by chunk, carrying one hidden state per track (`iter_track_predictions`):
   every person is a sequence of their own.

Only boxes and predictions are kept for the whole video (a few hundred bytes per frame and
track), never frames. Frames where a track's face was not found are marked (`face_found`);
outputs that need every frame take the prediction of the nearest earlier frame with that face
(the first available one before the first face), as the challenge's submission format does.

    >>> result = predict_video_tracks(predictor, "two_people.mp4")  # doctest: +SKIP
    >>> result.to_dataframe().groupby("track").size()  # doctest: +SKIP
    >>> predict_video(predictor, "utterance_1.mp4").to_dataframe().head()  # the main face only  # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import av
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from emenet.audio import AudioTrack, frame_windows, read_audio_track
from emenet.data.video_info import open_video
from emenet.errors import EMENetInputError
from emenet.face.align import alignment_transforms, crop_aligned, crop_face, crop_regions, transform_regions
from emenet.face.detector import FaceDetector, default_detector
from emenet.face.tracking import (FaceTracker, Track, filter_tracks, select_main_track, smooth_track_boxes,
                                  smooth_track_points)
from emenet.inference.predictor import Predictor
from emenet.inference.results import FramePredictions
from emenet.video.stages import DEFAULT_QUEUE_DEPTH, BackgroundConsumer, StageClock, prefetch, timed_iter
from emenet.models.mobilefacenet import INPUT_SIZE

log = logging.getLogger(__name__)

DEFAULT_SMOOTH_SIGMA = 2.0  # frames; Gaussian smoothing of each track's boxes (see smooth_track_boxes)
# A track that misses its face for up to this long (a hand over the face, a turn of the head) goes on.
DEFAULT_MAX_GAP_SECONDS = 1.0
# Tracks with fewer detections are too short to matter (the most persistent track is always kept).
DEFAULT_MIN_TRACK_LENGTH = 25
DEFAULT_X264_PRESET = "veryfast"  # VideoWriter's default (synthetic and test videos: small files)

FrameProgress = Callable[[str, int], None]
"""A progress callback: `progress(stage, frames)` after each chunk ("detecting", then "predicting")."""


def decoded_chunks(path: str | os.PathLike, chunk_size: int, clock: StageClock | None = None,
                   concurrent: bool = True) -> Iterator["FrameChunk"]:
    """`iter_video_chunks`, timed as the "decode" stage; with `concurrent`, decoded in a thread
    a bounded queue ahead of the caller (emenet.video.stages), so decoding overlaps the work."""
    chunks = timed_iter(iter_video_chunks(path, chunk_size), clock, "decode")
    return prefetch(chunks, name="emenet-decode") if concurrent else chunks


@contextlib.contextmanager
def _frame_counter(progress: bool | FrameProgress, stage: str, total: int | None, desc: str
                   ) -> Iterator[Callable[[int], None]]:
    """`update(n)` for one pass: a tqdm bar (progress=True), the caller's callback, or nothing."""
    if callable(progress):
        yield lambda n: progress(stage, n)
        return
    with tqdm(total=total, unit="frame", desc=desc, disable=not progress) as bar:
        yield bar.update


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


def read_video_meta(path: str | os.PathLike) -> VideoMeta:
    with open_video(path) as container:
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
    container = open_video(path)
    count = 0
    bar = tqdm(total=meta.num_frames_hint, unit="frame", desc=desc, disable=not progress, leave=False)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        # One buffer per chunk, filled in place: stacking per-frame arrays left the allocator's heap
        # fragmented, so peak memory grew with video length; a chunk-sized block is its own mapping
        # and goes back to the system when the chunk is dropped.
        frames: np.ndarray | None = None
        times: list[float] = []
        try:
            for frame in container.decode(stream):
                image = frame.to_ndarray(format="rgb24")  # RGB, never OpenCV's BGR
                if frames is None:
                    frames = np.empty((chunk_size, *image.shape), np.uint8)
                frames[len(times)] = image
                times.append(frame.time if frame.time is not None else (count + len(times)) / meta.fps)
                if len(times) == chunk_size:
                    yield FrameChunk(count, frames, np.asarray(times))
                    count += len(times)
                    bar.update(len(times))
                    frames, times = None, []
        except av.error.FFmpegError as exc:
            raise EMENetInputError(f"{path}: decoding failed after {count + len(times)} frames "
                                   f"({type(exc).__name__}: {str(exc)[:160]})") from None
        if times:
            yield FrameChunk(count, frames[:len(times)], np.asarray(times))
            count += len(times)
            bar.update(len(times))
        if count == 0:
            raise EMENetInputError(f"{path}: the video has no decodable frames")
    finally:
        bar.close()
        container.close()


# ------------------------------------------------------------------------ pass 1: tracks

@dataclass
class VideoTracks:
    """The face tracks of a video, with the time of every frame.

    `tracks` holds every track, its id its index: the `num_kept` kept ones first (0..K-1, in
    order of appearance), then the dropped ones (too short, or body faces).
    """

    meta: VideoMeta
    times: np.ndarray  # (N,) seconds
    tracks: list[Track] = field(default_factory=list)
    main_track_id: int | None = None
    num_kept: int = 0

    @property
    def num_frames(self) -> int:
        return len(self.times)

    @property
    def kept(self) -> list[Track]:
        return self.tracks[:self.num_kept]

    @property
    def dropped(self) -> list[Track]:
        return self.tracks[self.num_kept:]

    def main_track(self) -> Track | None:
        return None if self.main_track_id is None else self.tracks[self.main_track_id]


def max_gap_frames(fps: float, seconds: float = DEFAULT_MAX_GAP_SECONDS) -> int:
    """The tracker's `max_gap` (frames) for a gap of `seconds` at `fps` (at least 1)."""
    return max(1, int(round(seconds * fps)))


def track_video_faces(path: str | os.PathLike, detector: FaceDetector | None = None,
                      tracker: FaceTracker | None = None, chunk_size: int = 64, progress: bool | FrameProgress = True,
                      min_track_length: int = DEFAULT_MIN_TRACK_LENGTH, drop_body_faces: bool = True,
                      clock: StageClock | None = None, concurrent: bool = True) -> VideoTracks:
    """Pass 1: detect faces in every frame, link them into tracks, keep those that are people.

    The default tracker bridges gaps of up to DEFAULT_MAX_GAP_SECONDS; see `filter_tracks`
    for `min_track_length` and `drop_body_faces`. `clock` receives the "decode", "detect" and
    "track" stage times; `concurrent` decodes in a thread ahead of the detector.
    """
    detector = detector or default_detector()
    clock = clock or StageClock()
    meta = read_video_meta(path)
    tracker = tracker or FaceTracker(max_gap=max_gap_frames(meta.fps))
    times: list[np.ndarray] = []
    with _frame_counter(progress, "detecting", meta.num_frames_hint, "detecting faces") as update:
        for chunk in decoded_chunks(path, chunk_size, clock, concurrent):
            with clock.timed("detect", len(chunk)):
                found = detect_frames(detector, chunk.frames)
            with clock.timed("track", len(chunk)):
                for k, detections in enumerate(found):
                    tracker.update(chunk.start + k, detections)
            times.append(chunk.times)
            update(len(chunk))
    selection = filter_tracks(tracker.tracks, min_length=min_track_length, drop_body_faces=drop_body_faces)
    main = select_main_track(selection.kept)
    return VideoTracks(meta, np.concatenate(times), selection.all, None if main is None else main.track_id,
                       len(selection.kept))


@dataclass(frozen=True)
class TrackGeometry:
    """Where one track's face is, per video frame: `face_found` (N,), smoothed `boxes` (N, 4)
    `[x0, y0, x1, y1]` and crop `regions` (N, 3) `(cx, cy, side)`, NaN where it has no face.
    `affines` (N, 2, 3): the image -> crop similarity transforms of a landmark-aligned track
    (from its smoothed points, emenet.face.align), None for box crops."""

    track_id: int
    face_found: np.ndarray
    boxes: np.ndarray
    regions: np.ndarray
    affines: np.ndarray | None = None

    def crop(self, frame: np.ndarray, index: int) -> np.ndarray:
        """The 112x112 crop of video frame `index` (which must show the face)."""
        if self.affines is not None:
            return crop_aligned(frame, self.affines[index])
        return crop_face(frame, self.regions[index])


def track_crop_geometry(track: Track, num_frames: int, smooth_sigma: float = DEFAULT_SMOOTH_SIGMA
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(face_found (N,), boxes (N, 4), regions (N, 3), affines (N, 2, 3) or None) of one track;
    NaN where it has no face. A track with points is aligned on its smoothed points."""
    face_found = np.zeros(num_frames, bool)
    boxes = np.full((num_frames, 4), np.nan, np.float32)
    frames = track.frame_array()
    face_found[frames] = True
    boxes[frames] = smooth_track_boxes(frames, track.box_array(), smooth_sigma)
    points = track.point_array()
    if points is None:
        return face_found, boxes, crop_regions(boxes).astype(np.float32), None  # NaN rows stay NaN
    affines = np.full((num_frames, 2, 3), np.nan)
    affines[frames] = alignment_transforms(smooth_track_points(frames, points, smooth_sigma))
    regions = np.full((num_frames, 3), np.nan, np.float32)
    regions[frames] = transform_regions(affines[frames])
    return face_found, boxes, regions, affines


def track_geometry(track: Track, num_frames: int, smooth_sigma: float = DEFAULT_SMOOTH_SIGMA) -> TrackGeometry:
    return TrackGeometry(track.track_id, *track_crop_geometry(track, num_frames, smooth_sigma))


def detect_frames(detector: FaceDetector, frames: np.ndarray):
    """Each frame's Detections; a detector with `detect_batch` (BlazeFace) sees the chunk at once."""
    batch = getattr(detector, "detect_batch", None)
    if batch is not None:
        return batch(list(frames))
    return [detector(frame) for frame in frames]


# ------------------------------------------------------------------ pass 2: predictions

@dataclass(frozen=True)
class TrackChunk:
    """One track's part of a chunk: which frames show its face, and their predictions."""

    track_id: int
    face_found: np.ndarray  # (n,) bool
    predictions: FramePredictions  # face_found.sum() rows, in frame order


@dataclass(frozen=True)
class PredictedChunk:
    """Decoded frames with each predicted track's predictions for those frames that show its face."""

    frames: FrameChunk
    tracks: list[TrackChunk]

    @property
    def face_found(self) -> np.ndarray:
        """(n,) bool of the only track (single-face pipelines)."""
        return self._single().face_found

    @property
    def predictions(self) -> FramePredictions:
        return self._single().predictions

    def _single(self) -> TrackChunk:
        if len(self.tracks) != 1:
            raise ValueError(f"this chunk holds {len(self.tracks)} tracks; use .tracks")
        return self.tracks[0]


def _chunk_mask(face_found: np.ndarray, start: int, n: int) -> np.ndarray:
    """(n,) face_found of frames start..start+n-1 (a second decode may see extra frames: False)."""
    found = np.zeros(n, bool)
    valid = min(n, max(0, len(face_found) - start))
    found[:valid] = face_found[start:start + valid]
    return found


def iter_track_predictions(predictor: Predictor, path: str | os.PathLike, geometries: list[TrackGeometry],
                           chunk_size: int | None = None, progress: bool | FrameProgress = True,
                           sound: AudioTrack | None = None, clock: StageClock | None = None,
                           concurrent: bool = True) -> Iterator[PredictedChunk]:
    """Pass 2: crop every track's face where it was found and predict each track as its own
    sequence (one `StreamState` per track, carried from chunk to chunk). `clock` receives the
    "decode", "crop" and "predict" stage times; `concurrent` decodes in a thread ahead."""
    chunk_size = chunk_size or predictor.batch_size
    clock = clock or StageClock()
    states = {g.track_id: predictor.new_state() for g in geometries}
    num_frames = len(geometries[0].face_found) if geometries else None
    # An audio-visual predictor hears the video's own track: decoded once (16 kHz mono), then one
    # window per predicted frame, centred on that frame's time (emenet.audio).
    if predictor.audio_window and sound is None:
        sound = read_audio_track(path, predictor.audio_sample_rate)
    with _frame_counter(progress, "predicting", num_frames, "predicting") as update:
        for chunk in decoded_chunks(path, chunk_size, clock, concurrent):
            parts = []
            for g in geometries:
                found = _chunk_mask(g.face_found, chunk.start, len(chunk))
                local = np.flatnonzero(found)
                with clock.timed("crop", len(local)):
                    crops = np.empty((len(local), INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
                    for j, k in enumerate(local):  # one warp per frame: OpenCV works image by image
                        crops[j] = g.crop(chunk.frames[k], chunk.start + k)
                    windows = None if sound is None else frame_windows(
                        sound.samples, sound.fps, chunk.start + local, sound.sample_rate,
                        predictor.audio_window / sound.sample_rate, getattr(predictor, "audio_timing", "exact"))
                with clock.timed("predict", len(local)):
                    predictions, states[g.track_id] = predictor.predict_frames(crops, states[g.track_id],
                                                                               audio=windows)
                parts.append(TrackChunk(g.track_id, found, predictions))
            yield PredictedChunk(chunk, parts)
            update(len(chunk))


def iter_face_predictions(predictor: Predictor, path: str | os.PathLike, face_found: np.ndarray, regions: np.ndarray,
                          chunk_size: int | None = None, progress: bool | FrameProgress = True
                          ) -> Iterator[PredictedChunk]:
    """Pass 2 for one face: crop `regions` (N, 3) where `face_found` and predict them as one sequence."""
    boxes = np.full((len(face_found), 4), np.nan, np.float32)
    yield from iter_track_predictions(predictor, path, [TrackGeometry(0, face_found, boxes, regions)], chunk_size,
                                      progress)


# ---------------------------------------------------------------------------- encoding

class VideoWriter:
    """Encode RGB frames to an MP4 with PyAV (H.264 when available, else MPEG-4 Part 2).

    Frames are (H, W, 3) uint8 RGB of one size; odd sizes are padded by one black pixel
    (4:2:0 chroma needs even sizes). `preset` is x264's speed/size trade (same quality `crf`;
    a faster preset makes a larger file, see ANNOTATED_VIDEO_PRESET). Use as a context manager;
    `close` flushes the encoder.
    """

    def __init__(self, path: str | os.PathLike, rate: Fraction, width: int, height: int, crf: int = 23,
                 preset: str = DEFAULT_X264_PRESET):
        self.width, self.height = width, height
        self._container = av.open(str(path), mode="w", format="mp4")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self._stream = self._container.add_stream(codec, rate=rate)
        self._stream.width, self._stream.height = width + width % 2, height + height % 2
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self._stream.options = {"crf": str(crf), "preset": preset}
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
    with open_video(path) as container:
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
    """One face track's predictions for a whole video.

    `face_predictions` has one row per frame with this face (`face_found`), `frame_predictions`
    one row per video frame (gaps filled from the nearest earlier face frame). `boxes` are the
    track's smoothed detector boxes `[x0, y0, x1, y1]` and `regions` its crop squares
    `(cx, cy, side)`, NaN where the face was not found. `track_id` indexes `tracks`, every
    track of the video.
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
        """One row per video frame: track, frame, time, face_found, face box, then every prediction."""
        head = pd.DataFrame({"track": np.full(self.num_frames, self.track_id), "frame": np.arange(self.num_frames),
                             "time": self.times, "face_found": self.face_found,
                             "box_x0": self.boxes[:, 0], "box_y0": self.boxes[:, 1],
                             "box_x1": self.boxes[:, 2], "box_y1": self.boxes[:, 3]})
        return pd.concat([head, self.frame_predictions.to_dataframe()], axis=1)


@dataclass(frozen=True)
class MultiTrackPrediction:
    """Every predicted face track of a video (one `VideoPrediction` each, in id order).

    `tracks` is every track found (kept ones first, id = index); `predictions` covers the kept
    ones, or only the main face's with `main_face=True`.
    """

    meta: VideoMeta
    times: np.ndarray
    tracks: list[Track]
    predictions: list[VideoPrediction]
    main_track_id: int
    num_kept: int

    @property
    def num_frames(self) -> int:
        return len(self.times)

    @property
    def track_ids(self) -> list[int]:
        return [p.track_id for p in self.predictions]

    @property
    def main(self) -> VideoPrediction:
        """The most persistent track's predictions."""
        return next(p for p in self.predictions if p.track_id == self.main_track_id)

    def track(self, track_id: int) -> VideoPrediction:
        for p in self.predictions:
            if p.track_id == track_id:
                return p
        raise KeyError(f"no predictions for track {track_id}; predicted tracks: {self.track_ids}")

    @property
    def any_face(self) -> np.ndarray:
        """(N,) bool: some predicted track has a face in the frame."""
        return np.logical_or.reduce([p.face_found for p in self.predictions])

    def to_dataframe(self) -> pd.DataFrame:
        """Every predicted track's rows (one per video frame each), by track then frame."""
        return pd.concat([p.to_dataframe() for p in self.predictions], ignore_index=True)


def chunks_in_flight(depth: int = DEFAULT_QUEUE_DEPTH) -> int:
    """The most decoded chunks alive at once in the concurrent second pass: the decoder's (one being
    filled, `depth` queued), the predictor's, and the writer's (`depth` queued, one being drawn).

    A video of fewer chunks never fills the pipeline, so its peak memory is lower than a long
    video's by up to a chunk's frames per missing chunk (64 frames of 640x360: 44 MB each); a
    memory check that compares lengths starts above this (emenet.bench's long_video)."""
    return 2 * depth + 3


def predict_video_tracks(predictor: Predictor, path: str | os.PathLike, detector: FaceDetector | None = None,
                         tracker: FaceTracker | None = None, smooth_sigma: float = DEFAULT_SMOOTH_SIGMA,
                         chunk_size: int | None = None, progress: bool | FrameProgress = True,
                         main_face: bool = False, min_track_length: int = DEFAULT_MIN_TRACK_LENGTH,
                         select_track: Callable[[list[Track]], Track | None] = select_main_track,
                         on_chunk: Callable[[PredictedChunk, VideoTracks, list[TrackGeometry]], None] | None = None,
                         clock: StageClock | None = None, concurrent: bool = True,
                         on_predicted: Callable[["MultiTrackPrediction"], None] | None = None) -> MultiTrackPrediction:
    """Track the faces of a video and predict every frame of every kept track.

    With `main_face`, only the track that `select_track(kept tracks)` picks (default: the
    most persistent) is predicted. `on_chunk(chunk, tracks, geometries)` is called for each
    predicted chunk of decoded frames (the annotated-video writer uses it, so frames are
    decoded twice, not three times), timed as the "write" stage. Raises EMENetInputError when
    the video cannot be decoded, has no frames, or no face.

    With `concurrent` (the default), decoding runs in a thread ahead of the detector and the
    predictor, and `on_chunk` in another behind the predictor, joined by bounded queues
    (emenet.video.stages); the results are the same as with `concurrent=False`, where
    every stage runs in turn in this thread. `clock` receives every stage's busy time.
    `on_predicted(result)` is called once every frame is predicted, while `on_chunk` may still be
    catching up in its thread (the file writer's table and plot overlap the video's last frames).
    """
    chunk_size = chunk_size or predictor.batch_size
    clock = clock or StageClock()
    # an audio-visual predictor needs the audio track: decode it first, so a video without one fails at once
    sound = read_audio_track(path, predictor.audio_sample_rate) if predictor.audio_window else None
    tracks = track_video_faces(path, detector, tracker, chunk_size=chunk_size, progress=progress,
                               min_track_length=min_track_length, clock=clock, concurrent=concurrent)
    if not tracks.kept:
        raise EMENetInputError(f"{path}: no face found in any of its {tracks.num_frames} frames")
    chosen = tracks.kept
    if main_face:
        subject = select_track(tracks.kept)
        if subject is None:
            raise EMENetInputError(f"{path}: no face selected among its {len(tracks.kept)} face track(s)")
        chosen = [subject]
    geometries = [track_geometry(t, tracks.num_frames, smooth_sigma) for t in chosen]
    log.info("%s: %d frames, %d face track(s) kept (%d dropped: short or on a body); predicting %s", path,
             tracks.num_frames, tracks.num_kept, len(tracks.dropped),
             ", ".join(f"track {g.track_id} ({int(g.face_found.sum())} face frames)" for g in geometries))
    parts: dict[int, list[FramePredictions]] = {g.track_id: [] for g in geometries}

    def write(chunk: PredictedChunk) -> None:
        with clock.timed("write", len(chunk.frames)):
            on_chunk(chunk, tracks, geometries)

    with contextlib.ExitStack() as stack:
        if on_chunk is None:
            def hand_on(chunk: PredictedChunk) -> None:
                pass
        elif concurrent:
            hand_on = stack.enter_context(BackgroundConsumer(write, name="emenet-write")).put
        else:
            hand_on = write
        for chunk in iter_track_predictions(predictor, path, geometries, chunk_size, progress, sound, clock,
                                            concurrent):
            hand_on(chunk)
            for part in chunk.tracks:
                parts[part.track_id].append(part.predictions)
        predictions = [VideoPrediction(tracks.meta, tracks.times, g.face_found, g.boxes, g.regions,
                                       FramePredictions.concatenate(parts[g.track_id]), g.track_id, tracks.tracks)
                       for g in geometries]
        main_id = chosen[0].track_id if main_face else tracks.main_track_id
        result = MultiTrackPrediction(tracks.meta, tracks.times, tracks.tracks, predictions, main_id, tracks.num_kept)
        if on_predicted is not None:
            on_predicted(result)  # the writer thread may still be drawing and encoding the last chunks
    return result


def predict_video(predictor: Predictor, path: str | os.PathLike, detector: FaceDetector | None = None,
                  tracker: FaceTracker | None = None, smooth_sigma: float = DEFAULT_SMOOTH_SIGMA,
                  chunk_size: int | None = None, progress: bool | FrameProgress = True,
                  select_track: Callable[[list[Track]], Track | None] = select_main_track,
                  min_track_length: int = DEFAULT_MIN_TRACK_LENGTH) -> VideoPrediction:
    """Track the faces of a video and predict every frame of one of them (the main face).

    `select_track(tracks)` picks the subject among the kept tracks (default: the most
    persistent). Raises EMENetInputError when the video cannot be decoded, has no frames, or no face.
    """
    return predict_video_tracks(predictor, path, detector, tracker, smooth_sigma, chunk_size, progress,
                                main_face=True, min_track_length=min_track_length, select_track=select_track).main
