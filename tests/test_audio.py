"""Audio for EMENet-VA: decoding, resampling to 16 kHz mono, caching, one window per video frame."""
from __future__ import annotations

import logging
import os

import av
import numpy as np
import pytest

from emenet import audio as audio_mod
from emenet.audio import (AudioTrack, audio_cache_path, decode_audio, frame_windows, read_audio_track,
                          video_audio_windows, window_centres, window_length)
from emenet.errors import EMENetInputError
from media_helpers import click_time, write_click_video

SR = 16_000
W = 10_080
HALF = W // 2  # index of the centre sample in a window


# ---- windows -------------------------------------------------------------------------------

@pytest.mark.parametrize("fps", [25.0, 30000 / 1001, 30.0, 50.0])
def test_click_at_frame_k_lands_at_the_centre_of_window_k(fps):
    num_frames = 40
    track = np.zeros(int(num_frames / fps * SR), np.float32)
    clicks = [0, 1, 17, num_frames - 1]
    for k in clicks:
        track[int(round(click_time(k, fps) * SR))] = 1.0
    windows = frame_windows(track, fps, num_frames)
    assert windows.shape == (num_frames, W) and windows.dtype == np.float32
    for k in clicks:
        assert windows[k, HALF] == 1.0, k
    # every other window sees the click off-centre or not at all
    centre_hits = np.nonzero(windows[:, HALF])[0]
    assert centre_hits.tolist() == clicks


def test_window_convention_and_zero_padding_at_the_edges():
    assert window_length() == W and window_length(0.5, 8000) == 4000
    np.testing.assert_array_equal(window_centres(3, fps=25.0), [320, 960, 1600])  # (k + 0.5) / 25 s at 16 kHz
    ones = np.ones(SR, np.float32)  # 1 s of a constant
    windows = frame_windows(ones, fps=25.0, frames=np.array([0, 12, 24]))
    first_sample = HALF - 320  # window 0 starts 320 - 5040 samples before the track
    assert np.all(windows[0, :first_sample] == 0) and np.all(windows[0, first_sample:] == 1)
    assert np.all(windows[1] == 1)  # frame 12: centre at 0.5 s, the window fits inside 1 s
    last = SR - (window_centres(np.array([24]), 25.0)[0] - HALF)  # samples of the track in window 24
    assert np.all(windows[2, :last] == 1) and np.all(windows[2, last:] == 0)
    # frame indices pick rows of the full set
    all_windows = frame_windows(ones, 25.0, 25)
    np.testing.assert_array_equal(all_windows[[0, 12, 24]], windows)
    assert frame_windows(ones, 25.0, 0).shape == (0, W)
    # a track shorter than one window still gives full-width windows
    assert frame_windows(np.ones(100, np.float32), 25.0, 2).shape == (2, W)


def test_windows_reject_bad_input():
    with pytest.raises(ValueError, match="mono samples"):
        frame_windows(np.zeros((2, 100)), 25.0, 3)
    with pytest.raises(ValueError, match="fps"):
        frame_windows(np.zeros(100), 0.0, 3)
    with pytest.raises(ValueError, match="frame indices"):
        frame_windows(np.zeros(100), 25.0, np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match="frame indices"):
        frame_windows(np.zeros(100), 25.0, np.array([-1, 2]))


def test_many_windows_are_cut_at_once():
    """27,000 frames (15 min at 30 fps) of windows from a strided view, no per-frame loop."""
    track = np.arange(15 * 60 * SR, dtype=np.float32)
    frames = np.arange(0, 27_000, 900)
    windows = frame_windows(track, 30.0, frames)
    starts = window_centres(frames, 30.0) - HALF
    np.testing.assert_array_equal(windows[1:, 0], starts[1:].astype(np.float32))
    np.testing.assert_array_equal(windows[5], np.arange(starts[5], starts[5] + W, dtype=np.float32))


# ---- decoding ------------------------------------------------------------------------------

@pytest.mark.parametrize("sample_rate", [44_100, 48_000, 8_000, 16_000])
def test_decoded_audio_is_16k_mono_and_aligned_with_frames(tmp_path, sample_rate):
    path = tmp_path / "clip.mkv"
    write_click_video(path, fps=25, num_frames=50, sample_rate=sample_rate, clicks=(3, 20, 49))
    track = decode_audio(path)
    assert isinstance(track, AudioTrack) and track.sample_rate == SR and track.samples.dtype == np.float32
    assert track.fps == 25.0 and track.num_frames == 50
    assert abs(len(track.samples) - 2 * SR) <= 1  # 2 s resampled to 16 kHz
    windows = video_audio_windows(path)
    assert windows.shape == (50, W)
    for k in (3, 20, 49):
        assert np.argmax(np.abs(windows[k])) == HALF, k  # resampling keeps the click in place


def test_stereo_aac_in_mp4(tmp_path):
    path = tmp_path / "clip.mp4"
    write_click_video(path, fps=30000 / 1001, num_frames=60, sample_rate=48_000, codec="aac", layout="stereo",
                      clicks=(30,))
    track = decode_audio(path)
    assert track.samples.ndim == 1 and abs(track.fps - 29.97) < 1e-2
    windows = video_audio_windows(path)
    assert windows.shape == (60, W)
    assert abs(int(np.argmax(np.abs(windows[30]))) - HALF) <= 2  # AAC: priming removed by the container's timing


def test_video_without_audio_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "silent_film.mkv"
    write_click_video(path, sample_rate=None)
    with pytest.raises(EMENetInputError, match=r"silent_film.mkv: the video has no audio track"):
        decode_audio(path)
    with pytest.raises(EMENetInputError, match="not found"):
        decode_audio(tmp_path / "absent.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"junk")
    with pytest.raises(EMENetInputError, match="junk.mp4: cannot be decoded as a video"):
        decode_audio(tmp_path / "junk.mp4")


def test_audio_shorter_than_video_is_padded_with_a_warning(tmp_path, caplog):
    path = tmp_path / "short.mkv"
    write_click_video(path, fps=25, num_frames=50, sample_rate=16_000, audio_seconds=1.0)
    with caplog.at_level(logging.WARNING, logger="emenet.audio"):
        track = decode_audio(path)
    assert "shorter than the video" in caplog.text
    assert len(track.samples) == 2 * SR and np.all(track.samples[SR:] == 0)
    assert video_audio_windows(path).shape == (50, W)


def test_cache_is_npy_and_reused(tmp_path, monkeypatch):
    path = tmp_path / "clip.mkv"
    write_click_video(path, clicks=(5,))
    cache = tmp_path / "cache"
    first = read_audio_track(path, cache_dir=cache)
    cached = audio_cache_path(cache, path)
    assert cached.is_file() and cached.suffix == ".npy" and list(cache.iterdir()) == [cached]
    np.testing.assert_array_equal(np.load(cached, allow_pickle=False), first.samples)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(audio_mod, "decode_audio", no_decoding)
    again = read_audio_track(path, cache_dir=cache)
    np.testing.assert_array_equal(again.samples, first.samples)
    assert (again.fps, again.num_frames) == (first.fps, first.num_frames)
    np.testing.assert_array_equal(video_audio_windows(path, cache_dir=cache), frame_windows(first.samples, 25.0, 50))

    monkeypatch.undo()  # a video newer than its cache file is decoded again
    write_click_video(path, clicks=(9,))
    os.utime(path, (cached.stat().st_mtime + 10, cached.stat().st_mtime + 10))
    fresh = read_audio_track(path, cache_dir=cache)
    assert not np.array_equal(fresh.samples, first.samples)
    np.testing.assert_array_equal(np.load(cached, allow_pickle=False), fresh.samples)


# ---- the real video -------------------------------------------------------------------------

def test_real_video(shared_dir):
    path = shared_dir / "data" / "utterance_1.mp4"
    with av.open(str(path)) as container:
        decoded_frames = sum(1 for _ in container.decode(video=0))
    with av.open(str(path)) as container:  # the mono AAC track as decoded, at its own rate
        native_rate = container.streams.audio[0].rate
        native = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    track = decode_audio(path)
    assert native_rate == 44_100 and track.sample_rate == SR
    assert abs(track.fps - 29.97) < 1e-2 and track.num_frames == decoded_frames == 309
    assert abs(len(track.samples) / SR - len(native) / native_rate) < 1e-3  # same duration, at 16 kHz
    windows = video_audio_windows(path)
    assert windows.shape == (decoded_frames, W) and windows.dtype == np.float32
    # against an independent resampler: scipy's polyphase 44.1 kHz -> 16 kHz (160 / 441)
    from scipy.signal import resample_poly
    reference = resample_poly(native.astype(np.float64), 160, 441)
    n = min(len(reference), len(track.samples))
    ours, ref = track.samples[:n].astype(np.float64), reference[:n]
    assert np.corrcoef(ours, ref)[0, 1] > 0.99
    assert abs(np.sqrt(np.mean(ours ** 2)) / np.sqrt(np.mean(ref ** 2)) - 1) < 0.02
