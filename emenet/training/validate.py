"""Score a checkpoint on the validation split with the challenge metrics."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from emenet.data.affwild2 import load_affwild2_index
from emenet.data.labeled import labeled_videos
from emenet.errors import EMENetInputError
from emenet.io_utils import ensure_folder, write_json
from emenet.models.checkpoint import load_checkpoint
from emenet.models.mobilefacenet import INPUT_SIZE
from emenet.tasks import EMOTION_TASKS
from emenet.training.evaluate import attach_audio_for, check_expr_classes_match, evaluate_videos


def validate_checkpoint(checkpoint: str | os.PathLike, data_root: str | os.PathLike, out: str | os.PathLike | None = None,
                        split: str = "Validation_Set", chunk: int = 64, device: str = "cpu", num_workers: int = 0,
                        cache_dir: str | None = None, overwrite: bool = True, progress: bool = True,
                        audio_dir: str | None = None, annotations_dir: str | None = None,
                        crops_dirs: list[str] | None = None) -> dict[str, float]:
    """Challenge metrics of one checkpoint on `split`; written as JSON to `out` when given.

    An EMENet-VA checkpoint hears each video's audio, decoded once into `audio_dir` (default:
    `<cache_dir>/audio`, else `<data_root>/.emenet_cache/audio`).
    """
    if out is not None and os.path.isdir(out):
        raise EMENetInputError(f"{out}: is a folder; give a file name for the metrics (e.g. val.json)")
    if out is not None and not overwrite and os.path.lexists(out):  # refuse before the work, not after it
        raise EMENetInputError(f"{out} already exists; pass --overwrite to replace it")
    if out is not None:
        ensure_folder(Path(out).parent)  # a read-only or misplaced output folder fails now, not after the work
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EMENetInputError(f"--device {device}: CUDA is not available on this machine")
    model = load_checkpoint(checkpoint, device)
    tasks = tuple(t for t in model.tasks if t in EMOTION_TASKS)
    index = load_affwild2_index(data_root, cache_dir=cache_dir, annotations_dir=annotations_dir, crops_dirs=crops_dirs)
    check_expr_classes_match([model], index, str(checkpoint))
    videos = labeled_videos(index, split, tasks)
    if not videos:
        raise EMENetInputError(f"{data_root}: no {split} videos annotated for {list(tasks)}")
    videos = attach_audio_for([model], videos, index, audio_dir, cache_dir, progress)
    metrics = evaluate_videos(model, videos, chunk, INPUT_SIZE, device, num_workers, progress)
    if out is not None:
        write_json(out, {"checkpoint": str(checkpoint), "split": split, "release": index.release,
                         "num_videos": len(videos), "metrics": metrics},
                   overwrite=overwrite)
    return metrics
