"""Window sampling, batch sampling and clip-level augmentation."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from emenet.data.augment import AugmentConfig, augment_clips, resize_frames
from emenet.data.clips import LabeledVideo, chunk_bounds, frame_stride, training_windows, window_starts
from emenet.data.datasets import MultiTaskBatchSampler


def _video(n: int, labeled: np.ndarray | None = None, name: str = "v") -> LabeledVideo:
    mask = np.ones((n, 2), bool) if labeled is None else np.repeat(labeled[:, None], 2, axis=1)
    return LabeledVideo(name, Path("/nonexistent"), np.arange(1, n + 1), {"VA": np.zeros((n, 2), np.float32)}, {"VA": mask})


@pytest.mark.parametrize("length,seq_len,expected", [(10, 4, [0, 4, 6]), (8, 4, [0, 4]), (3, 4, [0]), (4, 4, [0])])
def test_window_starts_cover_the_video_and_end_aligned(length, seq_len, expected):
    assert window_starts(length, seq_len).tolist() == expected


def test_training_windows_subsample_and_pad():
    windows = training_windows([_video(10)], "VA", seq_len=3, fps=15)  # every 2nd frame: rows 0,2,4,6,8
    assert [w[1].tolist() for w in windows] == [[0, 2, 4], [4, 6, 8]]
    short = training_windows([_video(2)], "VA", seq_len=4, fps=30)
    assert short[0][1].tolist() == [0, 1, -1, -1]


def test_windows_without_any_label_are_dropped_but_unlabeled_frames_stay():
    labeled = np.zeros(12, bool)
    labeled[5] = True  # one labeled frame, in the second window
    windows = training_windows([_video(12, labeled)], "VA", seq_len=4, fps=30)
    assert [w[1].tolist() for w in windows] == [[4, 5, 6, 7]]


def test_videos_without_the_task_give_no_windows():
    assert training_windows([_video(10)], "AU", seq_len=4, fps=30) == []


def test_frame_stride_validates_fps():
    assert frame_stride(30) == 1 and frame_stride(10) == 3
    with pytest.raises(ValueError, match="--fps"):
        frame_stride(0)


def test_chunk_bounds():
    assert chunk_bounds(130, 64) == [(0, 64), (64, 128), (128, 130)]


def test_batch_sampler_one_batch_per_task_and_deterministic():
    ranges = {"AU": range(0, 10), "EXPR": range(10, 13)}
    a = list(MultiTaskBatchSampler(ranges, batch_size=2, seed=1, epoch=3, epoch_length="longest"))
    b = list(MultiTaskBatchSampler(ranges, batch_size=2, seed=1, epoch=3, epoch_length="longest"))
    c = list(MultiTaskBatchSampler(ranges, batch_size=2, seed=1, epoch=4, epoch_length="longest"))
    assert a == b and a != c
    assert len(a) == 5  # longest task: 10 clips / 2
    for batch in a:
        assert sum(i < 10 for i in batch) == 2 and sum(i >= 10 for i in batch) == 2
    au = [i for batch in a for i in batch if i < 10]
    assert sorted(au) == list(range(10))  # every AU clip once per epoch


def test_augmentation_is_drawn_once_per_clip():
    torch.manual_seed(0)
    base = torch.rand(1, 1, 3, 16, 16).expand(4, 5, 3, 16, 16).contiguous()  # 4 clips, 5 equal frames each
    out = augment_clips(base, AugmentConfig(image_size=16, mode="per_clip"), torch.Generator().manual_seed(0))
    for clip in out:
        for frame in clip[1:]:
            torch.testing.assert_close(frame, clip[0])  # same jitter and flip for every frame of a clip
    assert not torch.allclose(out[0], out[1]) or not torch.allclose(out[1], out[2])  # clips differ
    assert out.min() >= 0 and out.max() <= 1


def test_flip_only_config_mirrors_whole_clip():
    x = torch.rand(8, 3, 3, 4, 4)
    cfg = AugmentConfig(image_size=4, brightness=0, contrast=0, saturation=0, hflip_prob=1.0, mode="per_clip")
    torch.testing.assert_close(augment_clips(x, cfg), x.flip(-1))
    cfg = AugmentConfig(image_size=4, brightness=0, contrast=0, saturation=0, hflip_prob=0.0, mode="per_clip")
    torch.testing.assert_close(augment_clips(x, cfg), x)


def test_brightness_scales_by_a_factor_in_range():
    x = torch.full((64, 1, 3, 2, 2), 0.5)
    cfg = AugmentConfig(image_size=2, brightness=0.3, contrast=0, saturation=0, hflip_prob=0, mode="per_clip")
    out = augment_clips(x, cfg, torch.Generator().manual_seed(1))
    factors = out[:, 0, 0, 0, 0] / 0.5
    assert factors.min() >= 0.7 - 1e-6 and factors.max() <= 1.3 + 1e-6
    assert factors.std() > 0.05


def test_resize_frames():
    assert resize_frames(torch.rand(2, 3, 3, 128, 128), 112).shape == (2, 3, 3, 112, 112)
