"""Audio for training and evaluating EMENet-VA: per-video cached tracks and per-frame windows.

Each video's audio track is decoded once (`emenet.audio`: 16 kHz mono, sample 0 = the start of
the first video frame, shorter tracks zero-padded) into `<audio_dir>/<stem>-<hash>.16000hz.npy`
(`emenet.audio.audio_cache_path`, the same files `Train_Multimodal/extract_audio_files.py`
writes ahead of time). A clip then memory-maps its track and cuts one window per frame,
all at once: crop frame number f (1-based) is video frame k = f - 1, whose window is
centred on (k + 0.5) / fps as in `emenet.audio`.

The voice-activity teacher's per-frame targets are cached beside the tracks
(`<track>.vad-<teacher>-w<window>-fps<fps>.npy`, one float per video frame).

>>> videos = attach_audio(videos, index, default_audio_dir(root, None))  # doctest: +SKIP
>>> clip_windows(videos[0].audio, np.arange(8), 10080).shape  # doctest: +SKIP
(8, 10080)
"""
from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from emenet.audio import SAMPLE_RATE, audio_cache_path, read_audio_track
from emenet.audio_timing import AUDIO_TIMINGS
from emenet.data.audio_source import AudioSource
from emenet.data.clips import LabeledVideo
from emenet.errors import EMENetInputError
from emenet.io_utils import atomic_path

if TYPE_CHECKING:
    from emenet.data.affwild2 import AffWild2Index
    from emenet.models.vad_teacher import VADTeacher

log = logging.getLogger(__name__)

NO_AUDIO_HINT = "the audio-visual model needs each video's audio track (train the visual model with --modality visual)"


# --- caches ----------------------------------------------------------------------------------------

def default_audio_dir(data_root: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """`<cache_dir>/audio`, else `<data_root>/.emenet_cache/audio` (the index cache's folder)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser() / "audio"
    return Path(data_root).expanduser() / ".emenet_cache" / "audio"


def is_fresh(cached: Path, source: Path) -> bool:
    """A cache file exists and is not older than what it was made from."""
    return cached.is_file() and source.is_file() and cached.stat().st_mtime >= source.stat().st_mtime


def decode_to_cache(video: str | os.PathLike, audio_dir: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> Path:
    """Decode a video's audio into the cache unless a fresh copy is there; returns the `.npy` path.

    A video without an audio track raises EMENetInputError naming the file.
    """
    video = Path(video)
    cached = audio_cache_path(audio_dir, video, sample_rate)
    if not is_fresh(cached, video):
        try:
            read_audio_track(video, sample_rate, cache_dir=audio_dir)  # decodes, writes atomically
        except EMENetInputError as exc:
            if "no audio track" in str(exc):
                raise EMENetInputError(f"{exc}; {NO_AUDIO_HINT}") from None
            raise
    return cached


def prepare_audio_tracks(videos: Sequence[str | os.PathLike], audio_dir: str | os.PathLike,
                         sample_rate: int = SAMPLE_RATE, progress: bool = True) -> dict[Path, Path]:
    """Decode every video's track that is not cached yet; video -> its `.npy` track."""
    unique = list(dict.fromkeys(Path(v) for v in videos))
    todo = [v for v in unique if not is_fresh(audio_cache_path(audio_dir, v, sample_rate), v)]
    if todo:
        log.info("decoding the audio of %d videos into %s (%d cached)", len(todo), audio_dir, len(unique) - len(todo))
    for video in tqdm(todo, desc="audio", unit="video", disable=not progress or not todo, leave=False):
        decode_to_cache(video, audio_dir, sample_rate)
    return {v: audio_cache_path(audio_dir, v, sample_rate) for v in unique}


def vad_cache_path(track: Path, teacher_identity: str, window: int, fps: float) -> Path:
    return track.with_name(f"{track.stem}.vad-{teacher_identity}-w{window}-fps{fps:g}.npy")


def prepare_vad_targets(tracks: dict[Path, Path], fps: dict[Path, float], num_frames: dict[Path, int],
                        teacher: "VADTeacher", window: int, sample_rate: int = SAMPLE_RATE, batch: int = 8,
                        progress: bool = True) -> dict[Path, Path]:
    """The teacher's per-frame speech probability of every video, computed where not cached.

    `tracks` maps video -> cached track; each target file covers max(num_frames[video], the
    frames the track spans) video frames.
    """
    out = {v: vad_cache_path(t, teacher.identity, window, fps[v]) for v, t in tracks.items()}
    todo = [v for v in tracks if not is_fresh(out[v], tracks[v])]
    if todo:
        log.info("voice-activity targets (%s) for %d videos", teacher.identity, len(todo))
    bar = tqdm(total=len(todo), desc="VAD teacher", unit="video", disable=not progress or not todo, leave=False)
    for g in range(0, len(todo), batch):  # the teacher runs several tracks at once
        group = todo[g:g + batch]
        samples = [np.load(tracks[v], allow_pickle=False) for v in group]
        counts = [max(num_frames.get(v, 0), math.ceil(len(s) / sample_rate * fps[v])) for v, s in zip(group, samples)]
        probs = teacher.frame_probabilities(samples, [fps[v] for v in group], counts, window)
        for v, p in zip(group, probs):
            with atomic_path(out[v]) as tmp, open(tmp, "wb") as f:
                np.save(f, np.asarray(p, dtype=np.float32), allow_pickle=False)
        bar.update(len(group))
    bar.close()
    return out


def attach_audio(videos: Sequence[LabeledVideo], index: "AffWild2Index", audio_dir: str | os.PathLike,
                 sample_rate: int = SAMPLE_RATE, vad_teacher: "VADTeacher | None" = None, window: int | None = None,
                 progress: bool = True, timing: str = "exact", legacy_role: str = "teacher") -> list[LabeledVideo]:
    """`videos` with their `audio` set: tracks decoded (and VAD targets computed) where not cached.

    `timing="legacy"` places the windows as the original did (emenet.audio_timing; `legacy_role`
    teacher, inference or student); the VAD targets keep exact timing.

    Every name must have its raw video (videos/batch1|batch2) with an audio track; otherwise
    EMENetInputError names it. `window` (samples) is needed with `vad_teacher`.
    """
    table = index.videos.set_index("name")
    paths, fps, counts = {}, {}, {}
    for v in videos:
        if v.name not in table.index or not table.at[v.name, "video_path"]:
            raise EMENetInputError(f"{index.data_root}: no video file for {v.name!r} under videos/batch1|batch2; "
                                   f"{NO_AUDIO_HINT}")
        path = Path(table.at[v.name, "video_path"])
        paths[v.name] = path
        fps[path] = float(table.at[v.name, "fps"])
        counts[path] = max(counts.get(path, 0), int(table.at[v.name, "num_video_frames"]),
                           int(v.frames.max()) if len(v.frames) else 0)
    tracks = prepare_audio_tracks(list(paths.values()), audio_dir, sample_rate, progress)
    vad: dict[Path, Path] = {}
    if vad_teacher is not None:
        if window is None:
            raise ValueError("attach_audio: give the window (samples) the VAD targets are computed over")
        vad = prepare_vad_targets(tracks, fps, counts, vad_teacher, window, sample_rate, progress=progress)
    if timing not in AUDIO_TIMINGS:
        raise ValueError(f"timing must be one of {list(AUDIO_TIMINGS)}, got {timing!r}")
    return [replace(v, audio=AudioSource(tracks[paths[v.name]], fps[paths[v.name]], sample_rate,
                                         vad.get(paths[v.name]), timing, legacy_role)) for v in videos]
