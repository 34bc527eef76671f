"""Torch datasets: multitask training clips and in-order validation chunks."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from emenet.data.clips import LabeledVideo, chunk_bounds
from emenet.data.images import read_crops
from emenet.data.labelled_clips import clip_windows


def _check_audio(videos: list[LabeledVideo], audio_window: int | None, vad: bool) -> None:
    if (audio_window is not None or vad) and any(v.audio is None for v in videos):
        missing = next(v.name for v in videos if v.audio is None)
        raise ValueError(f"{missing}: audio windows were asked for but no audio is attached "
                         f"(emenet.data.audio_windows.attach_audio)")
    if vad and any(v.audio.vad is None for v in videos):
        missing = next(v.name for v in videos if v.audio.vad is None)
        raise ValueError(f"{missing}: VAD targets were asked for but none are attached (attach_audio(vad_teacher=...))")


class MultiTaskClipDataset(Dataset):
    """Every training window of every task; item i is one clip of one task.

    Items: {"task", "frames" (T, 3, H, W) uint8, "labels" (T, C) float32, "mask" (T, C) bool}, plus
    "audio" (T, audio_window) float32 (one window per frame, for EMENet-VA) when `audio_window`
    is given and "vad" (T,) float32 (the voice-activity teacher's targets) when `vad`.
    """

    def __init__(self, videos: list[LabeledVideo], tasks: tuple[str, ...], seq_len: int, fps: int, image_size: int,
                 audio_window: int | None = None, vad: bool = False, clips: str = "masked"):
        _check_audio(videos, audio_window, vad)
        self.videos = videos
        self.image_size = image_size
        self.audio_window, self.vad = audio_window, vad
        self.items: list[tuple[str, int, np.ndarray]] = []
        self.task_ranges: dict[str, range] = {}
        for task in tasks:
            start = len(self.items)
            self.items.extend((task, vid, idx) for vid, idx in clip_windows(videos, task, seq_len, fps, clips))
            self.task_ranges[task] = range(start, len(self.items))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        task, vid, idx = self.items[i]
        video = self.videos[vid]
        valid = idx >= 0
        rows = np.where(valid, idx, idx[valid][-1])  # pad by repeating the last real frame
        frames = read_crops(video.crop_paths(rows), self.image_size)
        mask = video.masks[task][rows] & valid[:, None]
        item = {"task": task, "frames": torch.from_numpy(frames),
                "labels": torch.from_numpy(video.labels[task][rows].astype(np.float32)),
                "mask": torch.from_numpy(mask)}
        if self.audio_window is not None:
            item["audio"] = torch.from_numpy(video.audio_windows(rows, self.audio_window))  # (T, W)
        if self.vad:
            item["vad"] = torch.from_numpy(video.vad_targets(rows))  # (T,)
        return item


def collate_by_task(items: list[dict]) -> dict[str, dict[str, torch.Tensor]]:
    """Group a step's clips by task: task -> {"frames" (B, T, 3, H, W), "labels", "mask", ...}."""
    out: dict[str, dict[str, list]] = {}
    for item in items:
        group = out.setdefault(item["task"], {k: [] for k in item if k != "task"})
        for key in group:
            group[key].append(item[key])
    return {task: {k: torch.stack(v) for k, v in group.items()} for task, group in out.items()}


EPOCH_LENGTHS = ("shortest", "longest")


def steps_per_epoch(task_sizes: dict[str, int], batch_size: int, epoch_length: str = "shortest") -> int:
    """Steps of one epoch for these clip counts per task.

    shortest: the original's (its loaders dropped incomplete batches and the epoch stopped with
    the shortest); longest: every clip of the largest task once, smaller tasks repeating.

    >>> steps_per_epoch({"AU": 23, "EXPR": 10, "VA": 57}, 4), steps_per_epoch({"AU": 23, "EXPR": 10, "VA": 57}, 4, "longest")
    (2, 14)
    """
    if epoch_length not in EPOCH_LENGTHS:
        raise ValueError(f"epoch_length must be one of {list(EPOCH_LENGTHS)}, got {epoch_length!r}")
    sizes = {t: n for t, n in task_sizes.items() if n > 0}
    if not sizes:
        raise ValueError("no training clips for any task")
    if epoch_length == "longest":
        return max(1, max(sizes.values()) // batch_size)
    task, fewest = min(sizes.items(), key=lambda kv: kv[1])
    if fewest < batch_size:
        raise ValueError(f"task {task} has {fewest} training clips, fewer than --batch_size {batch_size}: no full batch "
                         f"(the original drops incomplete batches); lower --batch_size or use --epoch_length longest")
    return fewest // batch_size


class MultiTaskBatchSampler(Sampler[list[int]]):
    """One batch per task per step; `steps` batches per epoch (default: see `steps_per_epoch`).

    Each task's clips are shuffled afresh every epoch; a task with more clips than the epoch
    needs contributes a fresh random subset, one with fewer cycles through its clips. The order
    depends only on (seed, epoch), so a resumed run sees the same batches.
    """

    def __init__(self, task_ranges: dict[str, range], batch_size: int, seed: int, epoch: int,
                 steps: int | None = None, epoch_length: str = "shortest"):
        self.task_ranges = {t: r for t, r in task_ranges.items() if len(r) > 0}
        if not self.task_ranges:
            raise ValueError("no training clips for any task")
        self.batch_size = batch_size
        self.seed, self.epoch = seed, epoch
        self.steps = steps if steps is not None else steps_per_epoch(
            {t: len(r) for t, r in self.task_ranges.items()}, batch_size, epoch_length)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        streams = {}
        need = self.steps * self.batch_size
        for task, r in self.task_ranges.items():
            reps = -(-need // len(r))
            perm = torch.cat([torch.randperm(len(r), generator=g) for _ in range(reps)])[:need]
            streams[task] = (perm + r.start).tolist()
        for step in range(self.steps):
            lo, hi = step * self.batch_size, (step + 1) * self.batch_size
            yield [i for stream in streams.values() for i in stream[lo:hi]]


class VideoChunkDataset(Dataset):
    """Consecutive chunks of every video's crop frames, in order, for streaming evaluation.

    Items: {"video": position in `videos`, "start", "stop", "frames" (t, 3, H, W) uint8}, plus
    "audio" (t, audio_window) float32 when `audio_window` is given (EMENet-VA).
    """

    def __init__(self, videos: list[LabeledVideo], chunk: int, image_size: int, audio_window: int | None = None):
        _check_audio(videos, audio_window, False)
        self.videos = videos
        self.image_size = image_size
        self.audio_window = audio_window
        self.items = [(vid, s, e) for vid, v in enumerate(videos) for s, e in chunk_bounds(len(v.frames), chunk)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        vid, start, stop = self.items[i]
        rows = np.arange(start, stop)
        frames = read_crops(self.videos[vid].crop_paths(rows), self.image_size)
        item = {"video": vid, "start": start, "stop": stop, "frames": torch.from_numpy(frames)}
        if self.audio_window is not None:
            item["audio"] = torch.from_numpy(self.videos[vid].audio_windows(rows, self.audio_window))  # (t, W)
        return item
