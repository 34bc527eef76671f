"""Torch datasets: multitask training clips and in-order validation chunks."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from emenet.data.clips import LabeledVideo, chunk_bounds, training_windows
from emenet.data.images import read_crops


class MultiTaskClipDataset(Dataset):
    """Every training window of every task; item i is one clip of one task.

    Items: {"task", "frames" (T, 3, H, W) uint8, "labels" (T, C) float32, "mask" (T, C) bool}.
    """

    def __init__(self, videos: list[LabeledVideo], tasks: tuple[str, ...], seq_len: int, fps: int, image_size: int):
        self.videos = videos
        self.image_size = image_size
        self.items: list[tuple[str, int, np.ndarray]] = []
        self.task_ranges: dict[str, range] = {}
        for task in tasks:
            start = len(self.items)
            self.items.extend((task, vid, idx) for vid, idx in training_windows(videos, task, seq_len, fps))
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
        return {"task": task, "frames": torch.from_numpy(frames),
                "labels": torch.from_numpy(video.labels[task][rows].astype(np.float32)),
                "mask": torch.from_numpy(mask)}


def collate_by_task(items: list[dict]) -> dict[str, dict[str, torch.Tensor]]:
    """Group a step's clips by task: task -> {"frames" (B, T, 3, H, W), "labels", "mask"}."""
    out: dict[str, dict[str, list]] = {}
    for item in items:
        group = out.setdefault(item["task"], {"frames": [], "labels": [], "mask": []})
        for key in group:
            group[key].append(item[key])
    return {task: {k: torch.stack(v) for k, v in group.items()} for task, group in out.items()}


class MultiTaskBatchSampler(Sampler[list[int]]):
    """One batch per task per step; `steps` batches per epoch, shorter tasks cycle.

    The order depends only on (seed, epoch), so a resumed run sees the same batches.
    """

    def __init__(self, task_ranges: dict[str, range], batch_size: int, seed: int, epoch: int,
                 steps: int | None = None):
        self.task_ranges = {t: r for t, r in task_ranges.items() if len(r) > 0}
        if not self.task_ranges:
            raise ValueError("no training clips for any task")
        self.batch_size = batch_size
        self.seed, self.epoch = seed, epoch
        longest = max(len(r) for r in self.task_ranges.values())
        self.steps = steps if steps is not None else max(1, longest // batch_size)

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

    Items: {"video": position in `videos`, "start", "stop", "frames" (t, 3, H, W) uint8}.
    """

    def __init__(self, videos: list[LabeledVideo], chunk: int, image_size: int):
        self.videos = videos
        self.image_size = image_size
        self.items = [(vid, s, e) for vid, v in enumerate(videos) for s, e in chunk_bounds(len(v.frames), chunk)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        vid, start, stop = self.items[i]
        rows = np.arange(start, stop)
        frames = read_crops(self.videos[vid].crop_paths(rows), self.image_size)
        return {"video": vid, "start": start, "stop": stop, "frames": torch.from_numpy(frames)}
