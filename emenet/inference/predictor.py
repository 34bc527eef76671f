"""One predictor for one model or an ensemble: aligned face crops -> per-frame predictions.

The models are recurrent, so consecutive frames of one face are a sequence: the predictor
carries each model's hidden state from one call to the next through a `StreamState`. A demo
feeds one frame per call, a video is fed in chunks (memory stays flat in the video's length),
and both give the same numbers as one call over all frames. Within a call the backbone runs
over up to `batch_size` frames at once; decoding and uncertainty are vectorised over frames.
The backbones run on a `backend` (emenet.fast.runners): `auto` picks `onnx` on the CPU where
the onnx extra is installed (batch norm folded, run by ONNX Runtime; exported once per
checkpoint and cached) and `fused` elsewhere (batch norm folded into the convolutions,
channels-last, micro-batches on CPU worker threads); both give logits equal to eager fp32 to
about 1e-5. EMENet-VA members run their audio branch eagerly beside either. Any backend can be
asked for by name (`emenet predict --backend NAME`).

    >>> predictor = Predictor(["checkpoints/teacher_exp_0/net_epoch_4_teacher_exp_0.pth"])  # doctest: +SKIP
    >>> preds, state = predictor.predict_frames(crops)  # (N, 112, 112, 3) uint8 RGB  # doctest: +SKIP
    >>> more, state = predictor.predict_frames(next_crops, state)  # same sequence  # doctest: +SKIP
    >>> preds.to_dataframe()  # doctest: +SKIP

Ensemble merge (the original's test script): mean probabilities over members; AU = mean
probability > 0.5, EXPR = argmax of the mean softmax, VA = expectation of the mean bin
distribution (the mean of the members' expectations). Uncertainty: normalized entropy; for an
ensemble total (entropy of the mean) = aleatoric (mean entropy) + epistemic.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from emenet.conformal.apply import conformal_from_args
from emenet.decoding import decode, task_probs
from emenet.errors import EMENetInputError
from emenet.fast.runners import Runner, make_runner
from emenet.inference.results import FramePredictions, TaskUncertainty
from emenet.models.checkpoint import load_checkpoint
from emenet.run_layout import named_checkpoint_paths
from emenet.models.emenet import EMENet
from emenet.models.mobilefacenet import INPUT_SIZE
from emenet.models.temporal import Hidden
from emenet.tasks import EMOTION_TASKS, NUM_LANDMARKS
from emenet.uncertainty import ensemble_task_uncertainty, task_uncertainty

log = logging.getLogger(__name__)


@dataclass
class StreamState:
    """What carries one face's sequence across calls: each model's hidden state, frames seen."""

    hidden: list[dict[str, Hidden] | None]
    frames_seen: int = 0


@dataclass
class _Logits:
    """Raw logits of every model for a run of frames: task -> (M, N, C) (FA: only members with it)."""

    emotion: dict[str, torch.Tensor] = field(default_factory=dict)
    fa: torch.Tensor | None = None


def resolve_device(device: str | torch.device) -> torch.device:
    """`torch.device(device)`, with a one-line error when CUDA is asked for but absent."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EMENetInputError(f"device {device!r} requested but CUDA is not available; use the CPU")
    return dev


def check_crops(crops: np.ndarray) -> np.ndarray:
    """Validate aligned crops: (N, 112, 112, 3) uint8 RGB; one (112, 112, 3) crop becomes N=1."""
    if not isinstance(crops, np.ndarray):
        raise EMENetInputError(f"expected crops as a numpy array, got {type(crops).__name__}")
    if crops.ndim == 3:
        crops = crops[None]
    if crops.ndim != 4 or crops.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3) or crops.dtype != np.uint8:
        raise EMENetInputError(f"expected aligned face crops of shape (N, {INPUT_SIZE}, {INPUT_SIZE}, 3) uint8 RGB, "
                               f"got {crops.dtype} {crops.shape}")
    return crops


class Predictor:
    """Load 1..N EMENet checkpoints and predict AU, EXPR, VA (and landmarks) with uncertainty.

    Every member must predict the same emotion tasks; the face-alignment head (FA) is
    optional per member (landmarks are averaged over the members that have it).
    """

    def __init__(self, checkpoints: Sequence[str | os.PathLike], device: str | torch.device = "cpu",
                 batch_size: int = 64, backend: str = "auto", num_workers: int | None = None,
                 coverage: float | None = None, conformal_file: str | os.PathLike | None = None,
                 audio_timing: str | None = None):
        if isinstance(checkpoints, (str, os.PathLike)):
            checkpoints = [checkpoints]
        if not checkpoints:
            raise EMENetInputError("no checkpoint given; pass at least one checkpoint file")
        if batch_size < 1:
            raise EMENetInputError(f"batch_size must be at least 1, got {batch_size}")
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.paths = [Path(p) for p in checkpoints]
        self.models: list[EMENet] = [load_checkpoint(p, self.device) for p in self.paths]
        first_tasks = self._emotion_tasks(self.models[0])
        if not first_tasks:
            raise EMENetInputError(f"{self.paths[0]}: the model predicts none of the emotion tasks {list(EMOTION_TASKS)}")
        for path, model in zip(self.paths[1:], self.models[1:]):
            tasks = self._emotion_tasks(model)
            if tasks != first_tasks:
                raise EMENetInputError(f"{path} predicts tasks {list(tasks)} but {self.paths[0]} predicts "
                                       f"{list(first_tasks)}; every checkpoint of an ensemble must have the same tasks")
        classes = {m.config.num_expr_classes for m in self.models}
        if "EXPR" in first_tasks and len(classes) > 1:
            raise EMENetInputError(f"the checkpoints have {sorted(classes)} expression classes; an ensemble needs one "
                                   "(7: 2nd ABAW, 8: with Other)")
        self.num_expr_classes: int = self.models[0].config.num_expr_classes
        self.tasks: tuple[str, ...] = first_tasks
        self._fa_members = [i for i, m in enumerate(self.models) if "FA" in m.tasks]
        self.audio_window, self.audio_sample_rate = self._audio_input()
        if audio_timing not in (None, "exact", "legacy"):
            raise EMENetInputError(f"audio_timing must be exact or legacy, got {audio_timing!r}")
        self.audio_timing = audio_timing or self._audio_timing()  # where windows sit (emenet.audio_timing)
        self.runner: Runner = make_runner(backend, self.models, self.device, num_workers=num_workers)
        # conformal sets and intervals (emenet.conformal): `coverage` and/or a saved calibration file
        self.conformal = conformal_from_args(self.paths, coverage, conformal_file)
        log.info("loaded %d model(s) on %s: tasks %s%s; %s backend", len(self.models), self.device, list(self.tasks),
                 " + landmarks" if self._fa_members else "", self.runner.name)

    @classmethod
    def from_names(cls, names: Sequence[str], load_epochs: Sequence[int],
                   checkpoints_dir: str | os.PathLike = "./checkpoints",
                   device: str | torch.device = "cpu", batch_size: int = 64, backend: str = "auto") -> "Predictor":
        """The original layout: `<checkpoints_dir>/<name>/net_epoch_<E>_<name>.pth` per (name, epoch).

        One epoch applies to every name; otherwise give one epoch per name.
        """
        paths = named_checkpoint_paths(names, load_epochs, checkpoints_dir)
        return cls(paths, device=device, batch_size=batch_size, backend=backend)

    def _audio_input(self) -> tuple[int, int | None]:
        """(samples per frame's audio window, sample rate) of the EMENet-VA members; (0, None) if none."""
        shapes = {(m.config.audio_window, m.config.sample_rate) for m in self.models if m.uses_audio}
        if len(shapes) > 1:
            raise EMENetInputError(f"the EMENet-VA members of an ensemble must hear the same audio window; got "
                                   f"(samples, rate) {sorted(shapes)}")
        return shapes.pop() if shapes else (0, None)

    def _audio_timing(self) -> str:
        """The EMENet-VA members' audio timing (their configs); `exact` if none."""
        timings = {m.config.audio_timing for m in self.models if m.uses_audio}
        if len(timings) > 1:
            raise EMENetInputError(f"the EMENet-VA members of an ensemble must use one audio timing; got {sorted(timings)}")
        return timings.pop() if timings else "exact"

    @staticmethod
    def _emotion_tasks(model: EMENet) -> tuple[str, ...]:
        return tuple(t for t in EMOTION_TASKS if t in model.tasks)

    @property
    def num_models(self) -> int:
        return len(self.models)

    @property
    def has_landmarks(self) -> bool:
        return bool(self._fa_members)

    @property
    def backend(self) -> str:
        """The inference path in use (emenet.fast.runners): eager, fused, compile, onnx or int8."""
        return self.runner.name

    def close(self) -> None:
        """Stop the backend's worker threads (optional: they end with the process)."""
        self.runner.close()

    def __repr__(self) -> str:
        return (f"Predictor({[str(p) for p in self.paths]}, device={str(self.device)!r}, batch_size={self.batch_size}, "
                f"backend={self.backend!r}, tasks={list(self.tasks)}, landmarks={self.has_landmarks})")

    def new_state(self) -> StreamState:
        """The state of a sequence that has not started (no hidden state yet)."""
        return StreamState(hidden=[None] * len(self.models))

    # ------------------------------------------------------------------------- hot path

    @torch.inference_mode()
    def _run(self, crops: np.ndarray, state: StreamState | None, audio: torch.Tensor | None = None) -> _Logits:
        """Logits of every model for N crops (and their audio windows), in chunks of `batch_size` frames.

        With a `state`, the crops are one sequence continuing it; without, each crop is a
        sequence of its own (length 1, no hidden state), run as a batch.
        """
        per_model: list[dict[str, list[torch.Tensor]]] = [{t: [] for t in m.tasks} for m in self.models]
        uint8 = torch.from_numpy(crops)  # (N, 112, 112, 3), shares memory
        for start in range(0, len(crops), self.batch_size):
            chunk = uint8[start:start + self.batch_size].to(self.device, non_blocking=True)
            frames = chunk.permute(0, 3, 1, 2).float().div_(255.0)  # (n, 3, 112, 112) RGB in [0, 1], channels-last
            sound = None if audio is None else audio[start:start + self.batch_size].to(self.device)  # (n, window)
            # every member over the same frames; with a state one sequence (1, n, ...), else n of one frame (n, 1, ...)
            outputs = self.runner.forward(frames, sound, None if state is None else state.hidden)
            for i, (logits, hidden) in enumerate(outputs):
                if state is not None:
                    state.hidden[i] = hidden
                for task, value in logits.items():
                    per_model[i][task].append(value.flatten(0, 1).float().cpu())  # (n, C)
        if state is not None:
            state.frames_seen += len(crops)
        def joined(parts: list[torch.Tensor], task: str) -> torch.Tensor:
            return torch.cat(parts) if parts else torch.zeros(0, self.models[0].config.num_logits(task))

        out = _Logits()
        for task in self.tasks:
            out.emotion[task] = torch.stack([joined(pm[task], task) for pm in per_model])  # (M, N, C)
        if self._fa_members:
            out.fa = torch.stack([joined(per_model[i]["FA"], "FA") for i in self._fa_members])  # (M_fa, N, 136)
        return out

    def _decode(self, logits: _Logits, n: int) -> FramePredictions:
        probs = {t: task_probs(t, v.double()) for t, v in logits.emotion.items()}  # (M, N, ...)
        mean = {t: p.mean(dim=0) for t, p in probs.items()}
        f32 = lambda t: t.numpy().astype(np.float32)  # noqa: E731
        if self.num_models == 1:
            unc = {t: TaskUncertainty(total=f32(u), aleatoric=f32(u)) for t, u in task_uncertainty(mean).items()}
        else:
            unc = {t: TaskUncertainty(**{k: f32(v) for k, v in u.items()})
                   for t, u in ensemble_task_uncertainty(probs).items()}
        kwargs = {}
        if "AU" in mean:
            kwargs.update(au_probs=f32(mean["AU"]), au=decode("AU", mean["AU"]).numpy().astype(np.int8))
        if "EXPR" in mean:
            kwargs.update(expr_probs=f32(mean["EXPR"]), expr=decode("EXPR", mean["EXPR"]).numpy().astype(np.int64))
        if "VA" in mean:
            kwargs.update(va_probs=f32(mean["VA"]), va=f32(decode("VA", mean["VA"])))
        if logits.fa is not None:
            kwargs["landmarks"] = logits.fa.mean(dim=0).view(n, NUM_LANDMARKS, 2).numpy().astype(np.float32)
        return FramePredictions(num_models=self.num_models, uncertainty=unc, **kwargs)

    def _check_audio(self, audio: np.ndarray | torch.Tensor | None, n: int) -> torch.Tensor | None:
        """(n, audio_window) float32 windows for EMENet-VA members; None (ignored) for EMENet-V only."""
        if not self.audio_window:
            return None
        if audio is None:
            raise EMENetInputError(f"this predictor has EMENet-VA members: pass audio=(N, {self.audio_window}) "
                                   f"windows at {self.audio_sample_rate} Hz, one per frame")
        audio = torch.as_tensor(np.asarray(audio, np.float32) if isinstance(audio, np.ndarray) else audio).float()
        if audio.shape != (n, self.audio_window):
            raise EMENetInputError(f"expected audio windows of shape ({n}, {self.audio_window}), got {tuple(audio.shape)}")
        return audio

    def predict_frames(self, crops: np.ndarray, state: StreamState | None = None,
                       audio: np.ndarray | torch.Tensor | None = None) -> tuple[FramePredictions, StreamState]:
        """Predict N consecutive aligned crops of one face, continuing the sequence in `state`.

        `crops` is (N, 112, 112, 3) uint8 RGB (one (112, 112, 3) crop is N=1); `audio` the
        (N, audio_window) windows centred on each frame when the predictor has EMENet-VA
        members (`audio_window` > 0), else None. Returns the predictions and the state to pass
        with the next frames of the same face; `state` is updated in place too. Start a new
        face (or a cut) with `state=None`.
        """
        crops = check_crops(crops)
        audio = self._check_audio(audio, len(crops))
        state = self.new_state() if state is None else state
        if len(state.hidden) != len(self.models):
            raise ValueError(f"state holds {len(state.hidden)} models' hidden states, the predictor has {len(self.models)}")
        return self._decode(self._run(crops, state, audio), len(crops)), state

    def predict_independent(self, crops: np.ndarray, audio: np.ndarray | torch.Tensor | None = None
                            ) -> FramePredictions:
        """Each crop alone, as a sequence of length 1 with no hidden state (unrelated photos)."""
        crops = check_crops(crops)
        return self._decode(self._run(crops, None, self._check_audio(audio, len(crops))), len(crops))

    def conformal_table(self, predictions: FramePredictions) -> pd.DataFrame:
        """`predictions.to_dataframe()` plus, with a conformal calibration loaded, EXPR_set, AU<k>_set,
        valence_lo/hi, arousal_lo/hi and abstain_<task> (emenet.conformal.apply)."""
        table = predictions.to_dataframe()
        return table if self.conformal is None else self.conformal.add_columns(table)

    def stream(self) -> "PredictionStream":
        """A stateful wrapper for live use: `stream(crop)` per frame, `stream.reset()` on a cut."""
        return PredictionStream(self)

    # ------------------------------------------------------------ images and videos

    def predict_image(self, image, detector=None, largest_face_only: bool = False):
        """Detect, align and predict every face of one photo (path or (H, W, 3) uint8 RGB array);
        `largest_face_only` keeps the largest face only. See inference.image."""
        from emenet.inference.image import predict_image
        return predict_image(self, image, detector=detector, largest_face_only=largest_face_only)

    def predict_video(self, path: str | os.PathLike, **kwargs):
        """Track the main face of a video and predict every frame; see video.predict.predict_video."""
        from emenet.video.predict import predict_video
        return predict_video(self, path, **kwargs)


class PredictionStream:
    """Feed frames of one face as they come; the hidden state is kept between calls.

    >>> stream = predictor.stream()  # doctest: +SKIP
    >>> for crop in camera_crops:  # each (112, 112, 3) uint8 RGB  # doctest: +SKIP
    ...     preds = stream(crop)   # FramePredictions with one row
    """

    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        self.state = predictor.new_state()

    def __call__(self, crops: np.ndarray, audio: np.ndarray | None = None) -> FramePredictions:
        preds, self.state = self.predictor.predict_frames(crops, self.state, audio=audio)
        return preds

    def reset(self) -> None:
        self.state = self.predictor.new_state()
