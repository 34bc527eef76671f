"""Frame rate and length of an Aff-wild2 video, read from the file's own headers with PyAV.

The frame rate decides how many label rows make a second of a clip and how audio windows line up
with frames, so it comes from the video, not from a constant. Only container and stream headers
are read; nothing is decoded.

Example:
    >>> path = find_video(Path("/data/aff-wild2"), "10-60-1280x720_right")  # -> videos/batch1/10-60-1280x720.mp4
    >>> video_info(path).fps
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av

from emenet.errors import EMENetInputError

# Where Aff-wild2 keeps its raw videos, in search order, and the extensions it uses.
VIDEO_DIRS: tuple[str, ...] = ("videos/batch1", "videos/batch2")
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi")
# Suffixes of names whose video shows two annotated people.
SIDE_SUFFIXES: tuple[str, ...] = ("_left", "_right")


@dataclass(frozen=True)
class VideoInfo:
    """What the index needs from a video: frame rate, frame count (-1 if unknown), duration in s."""

    fps: float
    num_frames: int
    duration: float
    has_audio: bool


def open_video(path: str | os.PathLike) -> av.container.InputContainer:
    """Open a media file with at least one video stream (PyAV); bad input is one EMENetInputError line."""
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


def video_frame_rate(stream: av.video.stream.VideoStream, path: str | os.PathLike) -> float:
    """The stream's frame rate; EMENetInputError where it records none."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate or float(rate) <= 0:
        raise EMENetInputError(f"{path}: the video stream records no frame rate")
    return float(rate)


def video_info(path: Path) -> VideoInfo:
    """Read the first video stream's frame rate, frame count and duration, and whether audio exists.

    The frame count comes from the container; where it does not record one it is estimated as
    round(duration * fps), and -1 when the duration is unknown too.
    """
    with open_video(path) as container:
        stream = container.streams.video[0]
        fps = video_frame_rate(stream, path)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = -1.0
        num_frames = int(stream.frames or 0)
        if num_frames <= 0:
            num_frames = int(round(duration * fps)) if duration > 0 else -1
        return VideoInfo(fps=fps, num_frames=num_frames, duration=duration, has_audio=bool(container.streams.audio))


def list_videos(data_root: Path) -> dict[str, Path]:
    """Map each video stem under videos/batch1|batch2 to its file (first directory, then .mp4, wins)."""
    found: dict[str, Path] = {}
    for sub in VIDEO_DIRS:
        directory = Path(data_root) / sub
        if not directory.is_dir():
            continue
        candidates = []
        with os.scandir(directory) as entries:
            for entry in entries:
                stem, ext = os.path.splitext(entry.name)
                if ext.lower() in VIDEO_EXTENSIONS and entry.is_file():
                    candidates.append((VIDEO_EXTENSIONS.index(ext.lower()), entry.name, stem))
        for _, file_name, stem in sorted(candidates):
            found.setdefault(stem, directory / file_name)
    return found


def video_stem(name: str, known_stems: set[str] | dict[str, Path]) -> str:
    """The video an annotated name belongs to: the name itself if a video has it, else without _left/_right."""
    if name in known_stems:
        return name
    for suffix in SIDE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def find_video(data_root: Path, name: str) -> Path | None:
    """The video file of an annotated name: exact stem first, else the stem without _left/_right."""
    videos = list_videos(Path(data_root))
    return videos.get(video_stem(name, videos))
