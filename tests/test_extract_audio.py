"""Train_Multimodal/extract_audio_files.py: every video's track decoded once, resumable, atomic,
failures named; training then reads the extracted files instead of decoding."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emenet import audio as audio_mod
from emenet.audio import SAMPLE_RATE, audio_cache_path, decode_audio
from emenet.data import extract_audio as X
from emenet.data.audio_windows import prepare_audio_tracks
from emenet.errors import EMENetInputError
from media_helpers import tone_signal, write_video

REPO = Path(__file__).resolve().parents[1]


def _write(path: Path, fps: int = 25, frames: int = 20, sample_rate: int | None = 48_000, tone: float = 440.0) -> None:
    """A tiny video with a PCM tone (or no audio track when `sample_rate` is None)."""
    audio = tone_signal(fps, frames, sample_rate, tone) if sample_rate else None
    write_video(path, fps, frames, sample_rate, audio)


@pytest.fixture
def video_dir(tmp_path) -> Path:
    root = tmp_path / "videos"
    _write(root / "batch1" / "a.avi", tone=300.0)
    _write(root / "batch1" / "b.avi", sample_rate=16_000, tone=500.0)
    _write(root / "batch2" / "c.avi", sample_rate=44_100, tone=700.0)
    (root / "batch2" / "notes.txt").write_text("not a video")
    return root


def _no_decoding(*args, **kwargs):
    raise AssertionError("decoded again instead of using the extracted file")


def test_extracts_every_video_then_resumes(video_dir, tmp_path, monkeypatch):
    out = tmp_path / "audio"
    report = X.extract_audio_files(video_dir, out, progress=False)
    videos = sorted(video_dir.rglob("*.avi"))
    assert sorted(report.decoded) == videos and report.cached == [] and report.failed == []
    for v in videos:  # the training's cache files, equal to decoding directly
        np.testing.assert_array_equal(np.load(audio_cache_path(out, v, SAMPLE_RATE)), decode_audio(v).samples)
    assert not list(out.glob(".*.tmp"))  # atomic: no temporary file left behind
    table = pd.read_csv(out / X.REPORT_NAME)
    assert sorted(table["video"]) == [str(v) for v in videos] and set(table["status"]) == {"decoded"}
    assert (table["samples"] == 20 / 25 * SAMPLE_RATE).all()  # 0.8 s at 16 kHz, whatever the source rate

    # a rerun skips everything; an interrupted run (one file missing) decodes only that one
    monkeypatch.setattr(audio_mod, "decode_audio", _no_decoding)
    again = X.extract_audio_files(video_dir, out, progress=False)
    assert again.decoded == [] and sorted(again.cached) == videos
    assert set(pd.read_csv(out / X.REPORT_NAME)["status"]) == {"cached"}
    # training reads the extracted files without decoding
    tracks = prepare_audio_tracks(videos, out, progress=False)
    assert all(p.is_file() for p in tracks.values())
    monkeypatch.undo()
    audio_cache_path(out, videos[1], SAMPLE_RATE).unlink()
    resumed = X.extract_audio_files(video_dir, out, progress=False)
    assert resumed.decoded == [videos[1]] and len(resumed.cached) == 2
    # a video newer than its file is decoded again
    later = audio_cache_path(out, videos[2], SAMPLE_RATE).stat().st_mtime + 10
    os.utime(videos[2], (later, later))
    assert X.extract_audio_files(video_dir, out, progress=False).decoded == [videos[2]]


def test_parallel_workers_write_the_same_files(video_dir, tmp_path):
    X.extract_audio_files(video_dir, tmp_path / "one", progress=False)
    report = X.extract_audio_files(video_dir, tmp_path / "two", num_workers=2, progress=False)
    assert len(report.decoded) == 3
    for v in video_dir.rglob("*.avi"):
        np.testing.assert_array_equal(np.load(audio_cache_path(tmp_path / "one", v)),
                                      np.load(audio_cache_path(tmp_path / "two", v)))


def test_a_video_without_audio_is_reported_and_the_others_are_kept(video_dir, tmp_path):
    _write(video_dir / "batch2" / "mute.avi", sample_rate=None)
    out = tmp_path / "audio"
    done = subprocess.run([sys.executable, str(REPO / "Train_Multimodal" / "extract_audio_files.py"), "--video_dir",
                           str(video_dir), "--audio_outdir", str(out), "--no_progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 video(s) could not be decoded") and "mute.avi: the video has no audio track" in last
    assert "3 decoded, 0 already there, 1 failed" in done.stdout
    assert len(list(out.glob("*.16000hz.npy"))) == 3
    table = pd.read_csv(out / X.REPORT_NAME).set_index("status")
    assert "mute.avi" in table.loc["failed", "video"]


def test_bad_folders_are_one_line_errors(tmp_path):
    with pytest.raises(EMENetInputError, match="video folder not found"):
        X.extract_audio_files(tmp_path / "absent", tmp_path / "out", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EMENetInputError, match="no .mp4 or .avi videos found"):
        X.extract_audio_files(tmp_path / "empty", tmp_path / "out", progress=False)
