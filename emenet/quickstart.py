"""The README's first command: synthetic data, a small teacher, its validation metrics."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from emenet.io_utils import write_json
from emenet.run_layout import net_file
from emenet.training.config import TrainConfig
from emenet.training.run import train_teacher
from emenet.training.validate import validate_checkpoint

log = logging.getLogger(__name__)

QUICKSTART_RUN = "quickstart_teacher"


def run_quickstart(out: Path, nepochs: int = 3, steps_per_epoch: int = 30, overwrite: bool = False,
                   num_videos: int = 16, progress: bool = True) -> str:
    """Generate data (once), train or resume a small teacher, score its best epoch; returns a summary."""
    from emenet.data.synth import generate_synthetic_dataset
    data_root = out / "data"
    if not (data_root / "synth_manifest.json").is_file():
        generate_synthetic_dataset(data_root, num_videos=num_videos, seed=0, overwrite=True, progress=progress)
    config = TrainConfig(name=QUICKSTART_RUN, data_root=str(data_root), checkpoints_dir=str(out / "checkpoints"),
                         loggings_dir=str(out / "logs"), nepochs=nepochs, seq_len=8, batch_size=2,
                         max_steps_per_epoch=steps_per_epoch, load_epoch=0 if overwrite else -1,
                         overwrite=overwrite, num_workers=1)
    result = train_teacher(config, progress=progress)
    best = net_file(result.run_dir, QUICKSTART_RUN, result.best_epoch)
    metrics_path = out / "validation_metrics.json"
    metrics = validate_checkpoint(best, data_root, metrics_path, progress=progress)
    write_json(out / "summary.json", {"data_root": str(data_root), "run_dir": str(result.run_dir),
                                      "best_checkpoint": str(best), "validation_metrics": str(metrics_path)})
    shown = {k: round(v, 4) for k, v in metrics.items() if k.endswith("score") or "_ccc_" in k}
    return (f"synthetic data:      {data_root}\n"
            f"teacher checkpoints: {result.run_dir}\n"
            f"TensorBoard logs:    {out / 'logs'}\n"
            f"best epoch:          {result.best_epoch} -> {best}\n"
            f"validation metrics:  {metrics_path}\n{json.dumps(shown, indent=2)}")
