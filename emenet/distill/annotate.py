"""Ensemble annotation: every member's logits on every frame of every train and validation video.

Layout of an annotation directory (all open formats):

    manifest.json           the members (name, epoch, checkpoint, sha256), tasks, data root, status
    frames/<name>.parquet   per frame: `frame`, each member's logits `m<i>.<TASK>.<k>`, ground truth
                            (`AU1`..`AU26`, `expr`, `valence`, `arousal`; -1 / NaN where unannotated)
    videos.parquet          per video: name and its split per task (written last: the run is complete)

Work is resumable per video: a rerun skips videos whose Parquet file exists, and refuses a
directory that a different ensemble started.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from emenet.data.affwild2 import AffWild2Index, load_affwild2_index
from emenet.data.clips import LabeledVideo
from emenet.data.labeled import labeled_videos
from emenet.distill.members import Member, load_members
from emenet.errors import EMENetInputError
from emenet.io_utils import atomic_path, write_json
from emenet.tasks import AU_NAMES, EMOTION_TASKS, num_logits
from emenet.training.evaluate import attach_audio_for, check_expr_classes_match, stream_ensemble_logits

log = logging.getLogger(__name__)

ANNOTATION_FORMAT = "emenet-annotations/1"
GROUND_TRUTH_COLUMNS = (*AU_NAMES, "expr", "valence", "arousal")
SPLITS = ("Train_Set", "Validation_Set")


def logit_columns(member: int, tasks: tuple[str, ...], num_expr_classes: int = 7) -> list[str]:
    """Column names of one member's logits; the EXPR head has 7 or 8 (`Other`) classes."""
    return [f"m{member}.{t}.{k}" for t in tasks for k in range(num_logits(t, num_expr_classes))]


def _check_manifest(out: Path, manifest: dict) -> None:
    path = out / "manifest.json"
    if not path.is_file():
        return
    import json
    old = json.loads(path.read_text())
    strip = [{k: m[k] for k in ("name", "epoch", "sha256")} for m in old.get("members", [])]
    new = [{k: m[k] for k in ("name", "epoch", "sha256")} for m in manifest["members"]]
    if old.get("format") != manifest["format"] or old.get("tasks") != manifest["tasks"] or strip != new:
        raise EMENetInputError(f"{out}: annotation directory was made by a different ensemble "
                               f"({[m['name'] + '@' + str(m['epoch']) for m in old.get('members', [])]}); "
                               f"use another --out or remove it")


def _videos_table(index: AffWild2Index, names: list[str]) -> pd.DataFrame:
    v = index.videos.set_index("name").loc[names]
    return pd.DataFrame({"name": names, **{f"split_{t}": v[f"split_{t}"].to_numpy() for t in EMOTION_TASKS},
                         "crop_dir": v["crop_dir"].to_numpy()})


def _ground_truth(index: AffWild2Index, video: LabeledVideo) -> dict[str, np.ndarray]:
    rows = index.frames[index.frames["name"] == video.name].set_index("frame").loc[video.frames]
    return {c: rows[c].to_numpy() for c in GROUND_TRUTH_COLUMNS}


def annotation_names(data_root: str | os.PathLike, tasks: tuple[str, ...], cache_dir: str | None = None,
                     annotations_dir: str | None = None, crops_dirs: list[str] | None = None) -> list[str]:
    """Every name annotated for any of `tasks` in the train or validation split (the videos to annotate)."""
    index = load_affwild2_index(data_root, cache_dir=cache_dir, annotations_dir=annotations_dir, crops_dirs=crops_dirs)
    return sorted({n for split in SPLITS for t in tasks for n in index.names(t, split)})


def create_annotations(members: list[Member], data_root: str | os.PathLike, out_dir: str | os.PathLike,
                       device: str = "cpu", chunk: int = 64, num_workers: int = 0, cache_dir: str | None = None,
                       progress: bool = True, names: list[str] | None = None, finalize: bool = True,
                       audio_dir: str | None = None, annotations_dir: str | None = None,
                       crops_dirs: list[str] | None = None) -> Path:
    """Annotate every train and validation video with every member's logits; returns `out_dir`.

    `names` restricts the work to a shard of the videos and `finalize=False` leaves the
    directory incomplete, so that shards can run in parallel and one last call finishes it.
    EMENet-VA members hear each video's audio, decoded once into `audio_dir` (default
    `<cache_dir>/audio`, else `<data_root>/.emenet_cache/audio`).

    >>> create_annotations(members_from_names(["t0", "t1"], [4, 4], "checkpoints"), "data/synth", "ann/r0")  # doctest: +SKIP
    """
    out = Path(out_dir)
    models = load_members(members, device)
    tasks = tuple(t for t in models[0].tasks if t in EMOTION_TASKS)
    num_expr_classes = models[0].config.num_expr_classes
    manifest = {"format": ANNOTATION_FORMAT, "tasks": list(tasks), "members": [m.to_dict() for m in members],
                "data_root": str(Path(data_root).resolve()), "num_expr_classes": num_expr_classes, "complete": False}
    _check_manifest(out, manifest)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    write_json(out / "manifest.json", manifest)

    index = load_affwild2_index(data_root, cache_dir=cache_dir, annotations_dir=annotations_dir, crops_dirs=crops_dirs)
    check_expr_classes_match(models, index, "ensemble")
    videos = [v for split in SPLITS for v in labeled_videos(index, split, tasks)]
    seen, unique = set(), []
    for v in videos:  # a name is in one split per task; union over splits
        if v.name not in seen:
            seen.add(v.name)
            unique.append(v)
    shard = unique if names is None else [v for v in unique if v.name in set(names)]
    todo = [v for v in shard if not (out / "frames" / f"{v.name}.parquet").is_file()]
    todo = attach_audio_for(models, todo, index, audio_dir, cache_dir, progress)
    log.info("annotating %d videos with %d members (%d already done)", len(todo), len(members), len(shard) - len(todo))
    for vid, member_logits in stream_ensemble_logits(models, todo, chunk, 112, device, num_workers, progress):
        video = todo[vid]
        table = {"frame": video.frames.astype(np.int32)}
        for i, logits in enumerate(member_logits):
            stacked = np.concatenate([logits[t] for t in tasks], axis=1)  # (n, sum C)
            table.update(dict(zip(logit_columns(i, tasks, num_expr_classes), stacked.T.astype(np.float32))))
        table.update(_ground_truth(index, video))
        with atomic_path(out / "frames" / f"{video.name}.parquet") as tmp:
            pd.DataFrame(table).to_parquet(tmp, index=False)
    if not finalize:
        return out
    missing = [v.name for v in unique if not (out / "frames" / f"{v.name}.parquet").is_file()]
    if missing:
        raise EMENetInputError(f"{out}: {len(missing)} videos are not annotated yet (e.g. {missing[0]})")
    with atomic_path(out / "videos.parquet") as tmp:
        _videos_table(index, [v.name for v in unique]).to_parquet(tmp, index=False)
    write_json(out / "manifest.json", {**manifest, "complete": True, "num_videos": len(unique)})
    return out
