"""A synthetic voice whose loudness, pitch and syllable rate follow arousal.

The audio-visual model needs audio that carries arousal, so each person "speaks" in utterances
of tone-and-noise syllables: the higher the arousal at a syllable, the louder, higher-pitched,
brighter and faster it is, and the shorter the pauses between utterances. Pauses are silent
apart from a faint room noise, which gives a per-frame voice-activity signal.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> arousal = np.linspace(-1, 1, 300)
    >>> track = speech_track(rng, arousal, fps=30, sample_rate=16000, voice=Voice.sample(rng))
    >>> track.samples.shape, track.voice_activity.shape
    ((160000,), (300,))
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Voice:
    """Per-person voice: pitch and timbre, constant within a video."""

    f0: float            # base pitch, Hz
    tilt: float          # spectral tilt of the harmonics (larger = darker)
    formants: tuple[float, float]   # two resonance centres, Hz
    breath: float        # share of noise in voiced syllables

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Voice:
        return cls(f0=float(rng.uniform(95, 230)), tilt=float(rng.uniform(1.1, 1.6)),
                   formants=(float(rng.uniform(450, 800)), float(rng.uniform(1100, 2200))),
                   breath=float(rng.uniform(0.03, 0.12)))


@dataclass
class SpeechTrack:
    samples: np.ndarray          # (num_samples,) float32 in [-1, 1]
    voice_activity: np.ndarray   # (num_frames,) bool: a syllable sounds during the frame
    envelope: np.ndarray         # (num_frames,) float32: loudness of the voice per frame, 0..1


def _syllable(rng: np.random.Generator, n: int, sr: int, voice: Voice, a01: float) -> np.ndarray:
    """One syllable of n samples at arousal a01 in [0, 1] (unit peak before scaling)."""
    t = np.arange(n) / sr
    env = np.clip(np.sin(np.pi * np.arange(n) / max(n - 1, 1)), 0, 1) ** 1.5
    if rng.random() < 0.15:   # an unvoiced syllable: a noise burst, high-passed by differencing
        noise = np.diff(rng.standard_normal(n + 1))
        return (0.35 * noise * env).astype(np.float32)
    f0 = voice.f0 * 2.0 ** (0.5 * (2 * a01 - 1) + rng.normal(0, 0.06))
    glide = 1 + rng.uniform(-0.08, 0.08) * (t / max(t[-1], 1e-6) - 0.5) * 2
    phase = 2 * np.pi * np.cumsum(f0 * glide) / sr
    tilt = voice.tilt + 0.6 * (1 - a01)          # higher arousal: brighter voice
    out = np.zeros(n)
    for h in range(1, 9):
        fh = h * f0
        if fh > 0.45 * sr:
            break
        res = 1 + 1.5 * sum(np.exp(-((fh - fc) / 250.0) ** 2) for fc in voice.formants)
        out += (h ** -tilt) * res * np.sin(h * phase)
    out /= max(np.max(np.abs(out)), 1e-6)
    out += voice.breath * rng.standard_normal(n)
    return (out * env).astype(np.float32)


def speech_track(rng: np.random.Generator, arousal: np.ndarray, fps: float, sample_rate: int, voice: Voice,
                 turn: np.ndarray | None = None) -> SpeechTrack:
    """Synthesise a voice for a per-frame arousal curve.

    `turn` (num_frames,) bool, when given, restricts syllables to frames where it is True (two
    people in one video take turns).
    """
    num_frames = len(arousal)
    duration = num_frames / fps
    n_total = int(round(duration * sample_rate))
    out = np.zeros(n_total, np.float32)
    activity = np.zeros(num_frames, bool)
    env_frames = np.zeros(num_frames, np.float32)

    def a01_at(sec: float) -> float:
        return float((np.clip(arousal[min(int(sec * fps), num_frames - 1)], -1, 1) + 1) / 2)

    sec = rng.uniform(0.0, 0.6)
    while sec < duration:
        utter_end = sec + rng.uniform(0.8, 3.0)
        while sec < min(utter_end, duration):
            a01 = a01_at(sec)
            rate = 2.5 + 4.0 * a01                       # syllables per second
            syl = rng.uniform(0.5, 0.8) / rate
            frame = min(int(sec * fps), num_frames - 1)
            if turn is None or turn[frame]:
                i0 = int(sec * sample_rate)
                n = min(int(syl * sample_rate), n_total - i0)
                if n > 16:
                    amp = (0.06 + 0.5 * a01 ** 1.5) * rng.uniform(0.8, 1.2)
                    out[i0:i0 + n] += amp * _syllable(rng, n, sample_rate, voice, a01)
                    f0, f1 = int(sec * fps), min(int((sec + syl) * fps) + 1, num_frames)
                    activity[f0:f1] = True
                    env_frames[f0:f1] = np.maximum(env_frames[f0:f1], min(amp / 0.6, 1.0))
            sec += syl + rng.uniform(0.2, 0.6) / rate
        a01 = a01_at(min(sec, duration - 1e-6))
        sec += rng.uniform(0.25, 1.2) * (1.6 - a01)       # calmer speakers pause longer
    return SpeechTrack(out, activity, env_frames)


def room_noise(rng: np.random.Generator, n: int, sample_rate: int, level: float) -> np.ndarray:
    """Faint coloured background noise (plus mains hum) so that silences are not digital zero."""
    white = rng.standard_normal(n).astype(np.float32)
    k = max(1, sample_rate // 2000)
    brown = np.convolve(white, np.ones(k, np.float32) / np.sqrt(k), mode="same")
    hum = 0.3 * np.sin(2 * np.pi * rng.choice([50.0, 60.0]) * np.arange(n) / sample_rate)
    return (level * (brown + hum)).astype(np.float32)
