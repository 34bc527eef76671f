"""A video's audio track as EMENet-VA sees it: 16 kHz mono, one window per video frame.

Decoding uses PyAV, resampling PyAV's `av.AudioResampler` (FFmpeg's swresample), any sample
rate and channel layout in, float32 mono at `sample_rate` out. Decoded tracks can be cached
per video as `.npy` float32 files (an open format, read back without pickle).

Time convention: sample 0 of the returned track is the start of the video's first frame
(the first decoded audio frame's timestamp is aligned with the video stream's start time;
AAC priming samples that the container marks with negative timestamps are dropped by the
decoder). Video
frame k (0-based: the k-th frame of the video, row k of an Aff-wild2 annotation file, crop
`{k+1:05d}.jpg`) is shown during [k / fps, (k + 1) / fps); its audio window is centred on
the middle of that interval, t_k = (k + 0.5) / fps, as the original's data loader centred
it. A window of W samples (10080 for 0.63 s at 16 kHz) covers samples
[c_k - W // 2, c_k - W // 2 + W) with c_k = round(t_k * sample_rate), so sample c_k sits at
index W // 2 of the window; samples before the track's start or past its end are zeros.

>>> windows = video_audio_windows("utterance_1.mp4")  # doctest: +SKIP
>>> windows.shape  # one window per video frame  # doctest: +SKIP
(309, 10080)
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from emenet.data.video_info import open_video, video_frame_rate
from emenet.errors import EMENetInputError
from emenet.io_utils import atomic_path

log = logging.getLogger(__name__)

# EMENet-VA's audio: MarbleNet's 16 kHz, and the original's `window_size` of 0.63 s per frame.
SAMPLE_RATE = 16_000
WINDOW_SECONDS = 0.63


@dataclass(frozen=True)
class AudioTrack:
    """A decoded audio track and the frame timing of the video it belongs to."""

    samples: np.ndarray  # (num_samples,) float32 mono; sample 0 = start of the first video frame
    sample_rate: int
    fps: float  # frame rate of the video stream
    num_frames: int  # frames of the video stream (container header, else counted packets)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def window_length(window_size: float = WINDOW_SECONDS, sample_rate: int = SAMPLE_RATE) -> int:
    """Samples per window: round(window_size * sample_rate), 10080 by default."""
    return int(round(window_size * sample_rate))


def window_centres(frames: int | np.ndarray, fps: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Sample index c_k = round((k + 0.5) / fps * sample_rate) of each frame's window centre."""
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    k = np.arange(frames) if np.isscalar(frames) else np.asarray(frames)
    if k.ndim != 1 or (k.size and (not np.issubdtype(k.dtype, np.integer) or k.min() < 0)):
        raise ValueError("frames must be a frame count or a 1-D array of non-negative integer frame indices")
    return np.round((k + 0.5) * (sample_rate / fps)).astype(np.int64)


def frame_windows(samples: np.ndarray, fps: float, frames: int | np.ndarray, sample_rate: int = SAMPLE_RATE,
                  window_size: float = WINDOW_SECONDS, timing: str = "exact") -> np.ndarray:
    """Cut one window per frame out of `samples`: (len(frames), W) float32, zero-padded at the edges.

    `timing="legacy"` places the windows as the original's inference did (emenet.audio_timing).

    `frames` is a frame count (windows for frames 0..frames-1) or an array of frame indices.
    No Python loop per frame: the track is padded once, then all windows are gathered from a
    strided view of it.

    >>> track = np.zeros(16000, np.float32); track[int(round(10.5 * 16000 / 30))] = 1.0
    >>> w = frame_windows(track, fps=30, frames=30)
    >>> w.shape, int(np.argmax(w[10])), float(w[10].max())
    ((30, 10080), 5040, 1.0)
    """
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples of shape (num_samples,), got {samples.shape}")
    width = window_length(window_size, sample_rate)
    if width < 1:
        raise ValueError(f"window_size {window_size} s is shorter than one sample at {sample_rate} Hz")
    if timing == "legacy":
        from emenet.audio_timing import legacy_window_starts
        k = np.arange(frames) if np.isscalar(frames) else np.asarray(frames)
        starts = legacy_window_starts(k, fps, sample_rate, width, len(samples), "inference")
    elif timing == "exact":
        starts = window_centres(frames, fps, sample_rate) - width // 2  # (N,)
    else:
        raise ValueError(f"timing must be exact or legacy, got {timing!r}")
    if starts.size == 0:
        return np.zeros((0, width), np.float32)
    pad_left = max(0, -int(starts.min()))
    pad_right = max(0, int(starts.max()) + width - len(samples))
    padded = np.pad(samples, (pad_left, pad_right))
    view = np.lib.stride_tricks.sliding_window_view(padded, width)  # (L - W + 1, W), no copy
    return np.ascontiguousarray(view[starts + pad_left])  # (N, W)


def _video_timing(container: av.container.InputContainer, path: Path) -> tuple[float, int, float]:
    """fps, frame count and start time (s) of the first video stream."""
    stream = container.streams.video[0]
    rate = video_frame_rate(stream, path)
    num_frames = int(stream.frames or 0)
    if num_frames <= 0:  # the header does not say: count the stream's packets (demuxing, no decoding)
        num_frames = sum(1 for packet in container.demux(stream) if packet.size)
        container.seek(0)
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    return rate, num_frames, start


def decode_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> AudioTrack:
    """Decode the first audio track of a video, resampled to `sample_rate` mono float32.

    The track is shifted so that sample 0 is the start of the first video frame (zeros
    prepended if the audio starts later, samples dropped if earlier); a track shorter than
    the video is padded with zeros to the video's length, with a warning when more than one
    frame's worth is missing.
    """
    path = Path(path)
    with open_video(path) as container:
        fps, num_frames, video_start = _video_timing(container, path)
        if not container.streams.audio:
            raise EMENetInputError(f"{path}: the video has no audio track")
        stream = container.streams.audio[0]
        audio_start = float(stream.start_time * stream.time_base) if stream.start_time is not None else video_start
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks, first = [], True
        try:
            for frame in container.decode(stream):
                if first and frame.time is not None:
                    audio_start = float(frame.time)  # the first sample's own time, where known
                first = False
                chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]  # flush
        except av.error.FFmpegError as exc:
            raise EMENetInputError(f"{path}: cannot decode its audio track ({type(exc).__name__}: {str(exc)[:160]})") from None
    samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)

    shift = int(round((audio_start - video_start) * sample_rate))  # > 0: audio starts after the video
    if shift > 0:
        samples = np.concatenate([np.zeros(shift, np.float32), samples])
    elif shift < 0:
        samples = samples[-shift:]
    video_samples = int(round(num_frames / fps * sample_rate))
    missing = video_samples - len(samples)
    if missing > 0:
        if missing > sample_rate / fps:
            log.warning("%s: the audio track (%.2f s) is shorter than the video (%.2f s); padding it with zeros",
                        path, len(samples) / sample_rate, num_frames / fps)
        samples = np.pad(samples, (0, missing))
    return AudioTrack(samples=samples, sample_rate=sample_rate, fps=fps, num_frames=num_frames)


def audio_cache_path(cache_dir: str | os.PathLike, video: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> Path:
    """`<cache_dir>/<stem>-<hash of the video's absolute path>.<rate>hz.npy`: unique per video file."""
    video = Path(video).resolve()
    digest = hashlib.sha1(str(video).encode()).hexdigest()[:10]
    return Path(cache_dir) / f"{video.stem}-{digest}.{sample_rate}hz.npy"


def read_audio_track(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE,
                     cache_dir: str | os.PathLike | None = None) -> AudioTrack:
    """`decode_audio`, through a per-video `.npy` cache in `cache_dir` when given.

    The cache holds only the samples; the frame timing is read from the video's headers each
    time. A cache file older than its video is decoded again.
    """
    path = Path(path)
    if cache_dir is None:
        return decode_audio(path, sample_rate)
    cached = audio_cache_path(cache_dir, path, sample_rate)
    if cached.is_file() and path.is_file() and cached.stat().st_mtime >= path.stat().st_mtime:
        with av.open(str(path)) as container:
            fps, num_frames, _ = _video_timing(container, path)
        samples = np.load(cached, allow_pickle=False)
        if samples.dtype == np.float32 and samples.ndim == 1:
            return AudioTrack(samples=samples, sample_rate=sample_rate, fps=fps, num_frames=num_frames)
        log.warning("%s: unexpected cached array %s %s; decoding again", cached, samples.dtype, samples.shape)
    track = decode_audio(path, sample_rate)
    with atomic_path(cached) as tmp, open(tmp, "wb") as f:
        np.save(f, track.samples, allow_pickle=False)
    return track


def video_audio_windows(path: str | os.PathLike, frames: int | np.ndarray | None = None,
                        sample_rate: int = SAMPLE_RATE, window_size: float = WINDOW_SECONDS,
                        cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """EMENet-VA's audio input for a video: (N, W) float32, one window per frame.

    `frames`: None for every frame of the video, a count, or an array of 0-based frame
    indices (e.g. one clip's). 15 minutes of video at 30 fps make 27,000 windows of 40 kB
    each, so ask for the frames you need.

    >>> windows = video_audio_windows("video.mp4", frames=np.arange(30, 60), cache_dir="cache/audio")  # doctest: +SKIP
    >>> audio = torch.from_numpy(windows)[None]  # (1, 30, 10080) for model(frames, audio)  # doctest: +SKIP
    """
    track = read_audio_track(path, sample_rate, cache_dir)
    return frame_windows(track.samples, track.fps, track.num_frames if frames is None else frames,
                         sample_rate, window_size)
