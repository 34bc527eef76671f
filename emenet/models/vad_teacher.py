"""Fixed voice-activity teachers for EMENet-VA's auxiliary VAD head: a speech probability per frame.

Two teachers, both frozen:

- `SileroVAD` (default): silero-vad's pretrained model as shipped inside its wheel
  (`silero_vad/data/silero_vad.jit`, TorchScript; `pip install 'emenet[vad]'`). It is a
  streaming model over 512-sample chunks (32 ms at 16 kHz) with a recurrent state, so it runs
  once over a whole track; frame k's probability is the mean of the chunk probabilities whose
  chunk centres lie inside frame k's window (the window EMENet-VA hears for that frame):
  the expected share of speech in the window.
- `MarbleNetVAD`: NeMo's `vad_marblenet` (`--vad_teacher PATH.nemo`, the original's teacher),
  a window classifier over labels (background, speech): frame k's probability is
  softmax(logits)[speech] of frame k's window.

Teachers are fixed and the audio is not augmented, so the targets are computed once per video
and cached (`emenet.data.audio_windows.prepare_vad_targets`), not at every training step.

>>> teacher = load_vad_teacher(None)  # silero-vad  # doctest: +SKIP
>>> teacher.frame_probabilities([samples], [30.0], [len_frames], 10080)[0].shape  # doctest: +SKIP
(len_frames,)
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from emenet.audio import SAMPLE_RATE, frame_windows, window_centres
from emenet.errors import EMENetInputError

log = logging.getLogger(__name__)

# silero-vad's chunk at 16 kHz, and the samples of the previous chunk it prepends as context
# (its `OnnxWrapper` / TorchScript wrapper: 512 and 64).
SILERO_CHUNK = 512
SILERO_CONTEXT = 64
SILERO_STATE_SHAPE = (2, 128)  # (layers * directions, hidden) of its decoder's LSTM state
SILERO_JIT = "silero_vad.jit"
VAD_INSTALL_HINT = "pip install 'emenet[vad]'"


class VADTeacher(Protocol):
    """What training needs from a voice-activity teacher."""

    identity: str  # names the model (and version): part of the cache key of its targets

    def frame_probabilities(self, tracks: list[np.ndarray], fps: list[float], num_frames: list[int],
                            window: int) -> list[np.ndarray]:
        """Per track: speech probability (num_frames,) float32 of each frame's window of `window` samples."""
        ...


def window_mean(series: np.ndarray, hop: int, fps: float, num_frames: int, window: int,
                sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mean of a regular series (point j centred at hop * j + hop / 2) over each frame's window.

    Frame k's window is [c_k - window // 2, c_k - window // 2 + window) with c_k as in
    `emenet.audio.window_centres`; points outside the track count as silence (0). One cumulative
    sum, no loop over frames.

    >>> window_mean(np.array([0., 1., 1., 0.]), hop=2, fps=1.0, num_frames=1, window=4, sample_rate=4).tolist()
    [0.5]
    """
    starts = window_centres(num_frames, fps, sample_rate) - window // 2  # (F,)
    # first and one-past-last point whose centre hop*j + hop/2 lies in [start, start + window)
    lo = np.ceil((starts - hop / 2) / hop).astype(np.int64)
    hi = np.ceil((starts + window - hop / 2) / hop).astype(np.int64)
    cum = np.concatenate([[0.0], np.cumsum(series, dtype=np.float64)])
    n = len(series)
    total = cum[np.clip(hi, 0, n)] - cum[np.clip(lo, 0, n)]
    count = np.maximum(hi - lo, 1)
    return (total / count).astype(np.float32)


def _silero_data_dir() -> Path:
    """silero-vad's packaged model folder, found without importing the package (its import sets
    torch's thread count to 1 for the whole process)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise EMENetInputError(f"silero-vad is not installed (the default VAD teacher); install it with: "
                               f"{VAD_INSTALL_HINT}, or give --vad_teacher PATH.nemo")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


class SileroVAD:
    """silero-vad's packaged TorchScript model, streamed over whole tracks, several at once.

    Each row of a batch is one track with its own recurrent state; tracks are grouped by
    length (shorter ones zero-padded at the end, which cannot change their earlier chunks).
    """

    hop = SILERO_CHUNK

    def __init__(self, path: str | os.PathLike | None = None, batch_tracks: int = 8):
        path = Path(path) if path is not None else _silero_data_dir() / SILERO_JIT
        if not path.is_file():
            raise EMENetInputError(f"{path}: silero-vad's model file not found; reinstall it with: {VAD_INSTALL_HINT}")
        try:
            with warnings.catch_warnings():  # torch deprecates TorchScript; silero-vad ships its model so
                warnings.simplefilter("ignore", DeprecationWarning)
                wrapper = torch.jit.load(str(path), map_location="cpu").eval()
            self._net = wrapper._model  # the stateless 16 kHz network: (chunk with context, state) -> (prob, state)
        except Exception as exc:  # a corrupt or foreign file
            raise EMENetInputError(f"{path}: not silero-vad's TorchScript model ({type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0][:160] if str(exc) else ''})") from None
        try:
            version = importlib.metadata.version("silero-vad")
        except importlib.metadata.PackageNotFoundError:
            version = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
        self.identity = f"silero-vad-{version}"
        self.batch_tracks = batch_tracks

    @torch.inference_mode()
    def chunk_probabilities(self, tracks: list[np.ndarray]) -> list[np.ndarray]:
        """Per track: speech probability of each 512-sample chunk (ceil(len / 512),) float32."""
        out: list[np.ndarray | None] = [None] * len(tracks)
        order = sorted(range(len(tracks)), key=lambda i: len(tracks[i]))
        for g in range(0, len(order), self.batch_tracks):
            group = order[g:g + self.batch_tracks]
            chunks = [-(-len(tracks[i]) // SILERO_CHUNK) for i in group]
            steps = max(chunks)
            padded = np.zeros((len(group), steps * SILERO_CHUNK), np.float32)
            for row, i in enumerate(group):
                padded[row, :len(tracks[i])] = tracks[i]
            x = torch.from_numpy(padded).view(len(group), steps, SILERO_CHUNK)  # (B, steps, 512)
            context = torch.cat([torch.zeros(len(group), 1, SILERO_CONTEXT), x[:, :-1, -SILERO_CONTEXT:]], dim=1)
            x = torch.cat([context, x], dim=2)  # (B, steps, 576): each chunk after its context
            state = torch.zeros(SILERO_STATE_SHAPE[0], len(group), SILERO_STATE_SHAPE[1])
            probs = torch.empty(len(group), steps)
            for s in range(steps):  # the model is recurrent over chunks
                p, state = self._net(x[:, s], state)
                probs[:, s] = p[:, 0]
            for row, i in enumerate(group):
                out[i] = probs[row, :chunks[row]].numpy().astype(np.float32)
        return out  # type: ignore[return-value]

    def frame_probabilities(self, tracks: list[np.ndarray], fps: list[float], num_frames: list[int],
                            window: int) -> list[np.ndarray]:
        series = self.chunk_probabilities(tracks)
        return [window_mean(s, self.hop, f, n, window) for s, f, n in zip(series, fps, num_frames)]


class MarbleNetVAD:
    """NeMo's VAD MarbleNet (a `.nemo` file or its state dict): softmax speech probability per window."""

    def __init__(self, path: str | os.PathLike, batch_windows: int = 256):
        from emenet.models.marblenet import load_nemo_marblenet, read_nemo_file
        path = Path(path)
        _, config = read_nemo_file(path)
        labels = list((config or {}).get("labels") or ["background", "speech"])
        if "speech" not in labels or len(labels) != 2:
            raise EMENetInputError(f"{path}: a VAD model must have the labels (background, speech), got {labels}")
        self.speech_index = labels.index("speech")
        self.net = load_nemo_marblenet(path, num_classes=2)
        self.net.requires_grad_(False)
        self.identity = f"marblenet-{hashlib.sha256(path.read_bytes()).hexdigest()[:10]}"
        self.batch_windows = batch_windows

    @torch.inference_mode()
    def frame_probabilities(self, tracks: list[np.ndarray], fps: list[float], num_frames: list[int],
                            window: int) -> list[np.ndarray]:
        out = []
        for samples, f, n in zip(tracks, fps, num_frames):
            probs = []
            for start in range(0, n, self.batch_windows):  # batches of frames, not one frame at a time
                frames = np.arange(start, min(start + self.batch_windows, n))
                windows = torch.from_numpy(frame_windows(samples, f, frames, SAMPLE_RATE, window / SAMPLE_RATE))
                probs.append(self.net.classify(windows).softmax(-1)[:, self.speech_index].numpy())
            out.append(np.concatenate(probs).astype(np.float32) if probs else np.zeros(0, np.float32))
        return out


def load_vad_teacher(path: str | os.PathLike | None = None) -> VADTeacher:
    """silero-vad (None) or the NeMo VAD MarbleNet at `path` (`--vad_teacher`)."""
    if path is None:
        return SileroVAD()
    return MarbleNetVAD(path)
