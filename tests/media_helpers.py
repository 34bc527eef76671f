"""Tiny videos with a known audio track, written with PyAV, for the audio tests."""
from __future__ import annotations

import fractions
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np

SIZE = 32  # frame width and height
STEP = 1024  # samples per audio frame (the AAC frame size)


def click_time(k: int, fps: float) -> float:
    """The documented convention: a click for frame k sits in the middle of its display interval."""
    return (k + 0.5) / fps


def click_signal(fps: float, num_frames: int, sample_rate: int, clicks: Sequence[int] = (),
                 seconds: float | None = None, floor: float = 0.0) -> np.ndarray:
    """Mono float32 audio at `floor` level but for a 0.9 click in the middle of each frame in `clicks`;
    `seconds` long (default: as long as the video)."""
    seconds = num_frames / fps if seconds is None else seconds
    signal = np.full(int(round(seconds * sample_rate)), floor, np.float32)
    for k in clicks:
        signal[int(round(click_time(k, fps) * sample_rate))] = 0.9
    return signal


def tone_signal(fps: float, num_frames: int, sample_rate: int, hz: float, amplitude: float = 0.3) -> np.ndarray:
    """Mono float32 sine of `hz` as long as the video."""
    t = np.arange(int(num_frames / fps * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def write_video(path: str | Path, fps: float = 25, num_frames: int = 50, sample_rate: int | None = None,
                audio: np.ndarray | None = None, codec: str = "pcm_s16le", layout: str = "mono") -> Path:
    """A black mpeg4 video with `audio` (mono, in [-1, 1]; the same in both channels when `layout`
    is stereo) as its track at `sample_rate`, encoded with `codec` (pcm_s16le: no codec delay);
    no audio track when `audio` is None. Parent folders are made."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        video = container.add_stream("mpeg4", rate=fractions.Fraction(fps).limit_denominator(1001))
        video.width, video.height, video.pix_fmt = SIZE, SIZE, "yuv420p"
        stream = None
        if audio is not None:
            stream = container.add_stream(codec, rate=sample_rate)
            stream.layout = layout
        black = av.VideoFrame.from_ndarray(np.zeros((SIZE, SIZE, 3), np.uint8), format="rgb24")
        for _ in range(num_frames):
            container.mux(video.encode(black))
        container.mux(video.encode())
        if stream is None:
            return path
        channels = 1 if layout == "mono" else 2
        pcm = np.repeat((np.asarray(audio) * 32767).astype(np.int16)[:, None], channels, axis=1)  # (n, channels)
        for start in range(0, len(pcm), STEP):
            chunk = pcm[start:start + STEP]
            if codec == "pcm_s16le":  # packed: channels interleaved in one plane
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk.reshape(1, -1)), format="s16",
                                                   layout=layout)
            else:  # planar float, e.g. for aac
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk.T.astype(np.float32) / 32767),
                                                   format="fltp", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = sample_rate, start, fractions.Fraction(1, sample_rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_click_video(path: str | Path, fps: float = 25, num_frames: int = 50, sample_rate: int | None = 44_100,
                      clicks: Sequence[int] = (), audio_seconds: float | None = None, floor: float = 0.0,
                      codec: str = "pcm_s16le", layout: str = "mono") -> Path:
    """A black video whose audio (see `click_signal`) clicks in the middle of each frame in `clicks`;
    no audio track when `sample_rate` is None."""
    audio = None if sample_rate is None else click_signal(fps, num_frames, sample_rate, clicks, audio_seconds, floor)
    return write_video(path, fps, num_frames, sample_rate, audio, codec, layout)
