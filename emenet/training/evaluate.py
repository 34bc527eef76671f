"""Streaming a model over whole videos and scoring it with the challenge metrics."""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from emenet.evaluation import metrics as M
from emenet.data.affwild2 import AffWild2Index
from emenet.data.audio_windows import attach_audio, default_audio_dir
from emenet.data.augment import to_float_frames
from emenet.data.clips import LabeledVideo
from emenet.data.datasets import VideoChunkDataset
from emenet.decoding import decode, task_probs
from emenet.errors import EMENetInputError
from emenet.models.emenet import EMENet
from emenet.models.mobilefacenet import INPUT_SIZE
from emenet.tasks import EMOTION_TASKS, TASKS


def audio_window_of(models: list[EMENet]) -> int | None:
    """Samples per frame's audio window the EMENet-VA members need (None: all visual).

    Members that hear audio must agree on it, since each chunk's windows are cut once for all.
    """
    windows = {m.config.audio_window for m in models if m.uses_audio}
    if len(windows) > 1:
        raise EMENetInputError(f"the audio-visual members use different audio windows {sorted(windows)} (samples); "
                               f"an ensemble needs one")
    return windows.pop() if windows else None


def attach_audio_for(models: list[EMENet], videos: list[LabeledVideo], index: AffWild2Index,
                     audio_dir: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None,
                     progress: bool = True) -> list[LabeledVideo]:
    """`videos` with their audio attached when any member is an EMENet-VA (decoded once into the
    audio cache: `audio_dir`, default `emenet.data.audio_windows.default_audio_dir`); else unchanged."""
    if audio_window_of(models) is None:
        return videos
    sample_rate = next(m.config.sample_rate for m in models if m.uses_audio)
    audio_dir = Path(audio_dir) if audio_dir else default_audio_dir(index.data_root, cache_dir)
    return attach_audio(videos, index, audio_dir, sample_rate, progress=progress)


def check_expr_classes_match(models: list[EMENet], index: AffWild2Index, source: str = "checkpoint") -> None:
    """A model scored on EXPR labels must have the data's class count (7, or 8 with `Other`)."""
    for model in models:
        if "EXPR" in model.tasks and model.config.num_expr_classes != index.num_expr_classes:
            raise EMENetInputError(f"{source}: the model has {model.config.num_expr_classes} expression classes but "
                                   f"the {index.release} data in {index.data_root} has {index.num_expr_classes}; "
                                   "score it on data of its own release")


class StreamHook:
    """Called by `stream_logits` beside the members' heads, e.g. to run MC-dropout passes on a
    member's features without reading or encoding the frames again; override what you need."""

    def start_video(self) -> None:
        """A new video starts: reset what is carried from one chunk to the next."""

    def on_features(self, step: int, member: int, model: EMENet, features: torch.Tensor) -> None:
        """Member `member`'s features (1, t, F) of chunk `step` (counted over all videos)."""


@torch.no_grad()
def stream_logits(models: Sequence[EMENet], videos: Sequence[LabeledVideo], *, chunk: int, image_size: int = INPUT_SIZE,
                  device: str | torch.device = "cpu", num_workers: int = 0, tasks: Sequence[str] | None = None,
                  hooks: Sequence[StreamHook] = (), progress: bool = True, desc: str = "predict"
                  ) -> Iterator[tuple[int, list[dict[str, np.ndarray]]]]:
    """Yield (video position, per model: task -> logits (n, C)) per video: the one streaming loop.

    Each model runs in eval mode carrying its own hidden state in frame order; every chunk of
    crops (and of audio windows when a member `uses_audio`: the videos need their audio
    attached, see `emenet.data.audio_windows.attach_audio`) is read once and shared by all
    models and `hooks`. `tasks` keeps those heads' logits (default all). Memory holds one
    video's logits at a time; a hook's per-video results are complete when its video is yielded.
    """
    for m in models:
        m.eval()
    window = audio_window_of(list(models))
    loader = DataLoader(VideoChunkDataset(list(videos), chunk, image_size, window), batch_size=None, shuffle=False,
                        num_workers=num_workers)
    current, hidden, parts = None, [], []
    bar = tqdm(total=sum(len(v.frames) for v in videos), unit="frame", desc=desc, disable=not progress, leave=False)
    for step, item in enumerate(loader):
        vid = int(item["video"])
        if vid != current:
            if current is not None:
                yield current, [concat_parts(p) for p in parts]
            current, hidden, parts = vid, [None] * len(models), [[] for _ in models]
            for hook in hooks:
                hook.start_video()
        frames = to_float_frames(item["frames"].to(device, non_blocking=True))[None]  # (1, t, 3, H, W)
        audio = item["audio"].to(device, non_blocking=True)[None] if window else None  # (1, t, W)
        for i, model in enumerate(models):
            features = model.encode(frames, audio)  # (1, t, 512), or (1, t, 640) visual + audio for an EMENet-VA
            logits, hidden[i] = model.forward_features(features, hidden[i])
            parts[i].append({t: logits[t][0].float().cpu().numpy() for t in (tasks or logits)})  # (t, C) per task
            for hook in hooks:
                hook.on_features(step, i, model, features)
        bar.update(frames.shape[1])
    bar.close()
    if current is not None:
        yield current, [concat_parts(p) for p in parts]


def stream_ensemble_logits(models: list[EMENet], videos: list[LabeledVideo], chunk: int, image_size: int,
                           device: str | torch.device = "cpu", num_workers: int = 0, progress: bool = True
                           ) -> Iterator[tuple[int, list[dict[str, np.ndarray]]]]:
    """Yield (video position, per model: task -> logits (n, C)) per video (`stream_logits`, every head)."""
    yield from stream_logits(models, videos, chunk=chunk, image_size=image_size, device=device,
                             num_workers=num_workers, progress=progress)


def stream_video_logits(model: EMENet, videos: list[LabeledVideo], chunk: int, image_size: int,
                        device: str | torch.device = "cpu", num_workers: int = 0, progress: bool = True
                        ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield (video position, task -> logits (n, C)) per video, carrying the hidden state in frame order."""
    for vid, (logits,) in stream_ensemble_logits([model], videos, chunk, image_size, device, num_workers, progress):
        yield vid, logits


def concat_parts(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One video's per-chunk logits (task -> (t, C) each) joined into task -> (n, C)."""
    return {t: np.concatenate([p[t] for p in parts]) for t in parts[0]}


def decoded_predictions(logits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """task -> decoded prediction per frame (AU 0/1 (n, 12), EXPR (n,), VA (n, 2))."""
    return {t: decode(t, task_probs(t, torch.from_numpy(v))).numpy() for t, v in logits.items() if t in EMOTION_TASKS}


def evaluate_videos(model: EMENet, videos: list[LabeledVideo], chunk: int = 64, image_size: int = INPUT_SIZE,
                    device: str | torch.device = "cpu", num_workers: int = 0, progress: bool = True) -> dict[str, float]:
    """Challenge metrics of `model` over the labelled frames of `videos` (flat dict of floats)."""
    tasks = sorted({t for v in videos for t in v.labels} & set(model.tasks))
    acc = M.ChallengeMetrics(tasks, model.config.num_expr_classes)
    for vid, logits in stream_video_logits(model, videos, chunk, image_size, device, num_workers, progress):
        video = videos[vid]
        preds = decoded_predictions(logits)
        for task in tasks:
            if task not in video.labels:
                continue
            labels = np.where(video.masks[task], video.labels[task], TASKS[task].missing_value)
            keep = video.masks[task].any(axis=1)
            pred = preds[task][keep]
            label = labels[keep]
            acc.update(task, pred, TASKS[task].frame_values(label))
    return acc.compute()
