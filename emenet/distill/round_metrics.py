"""Scores of one round: every member and the ensemble on the validation split."""
from __future__ import annotations

import os

import numpy as np
import torch

from emenet.evaluation import metrics as M
from emenet.data.affwild2 import load_affwild2_index
from emenet.data.labeled import labeled_videos
from emenet.decoding import decode, task_probs
from emenet.distill.members import Member, load_members
from emenet.evaluation.selective_report import ENSEMBLE_SCORES, SINGLE_MODEL_SCORES, selective_rows
from emenet.tasks import EMOTION_TASKS, TASKS
from emenet.training.evaluate import attach_audio_for, stream_ensemble_logits
from emenet.uncertainty import ensemble_task_uncertainty


def _probs(logits: dict[str, np.ndarray], tasks: tuple[str, ...]) -> dict[str, torch.Tensor]:
    return {t: task_probs(t, torch.from_numpy(logits[t])) for t in tasks}


def ensemble_validation_scores(members: list[Member], data_root: str | os.PathLike, device: str = "cpu",
                               chunk: int = 64, cache_dir: str | None = None, progress: bool = True,
                               audio_dir: str | None = None, annotations_dir: str | None = None,
                               crops_dirs: list[str] | None = None) -> list[dict]:
    """One row per member and one for the ensemble: challenge metrics, calibration, mean uncertainty,
    and selective prediction (`sel_<score>_<key>`, emenet.evaluation.selective: AURC, excess AURC and the risk at
    50/80/90% coverage per task; members ranked by their total uncertainty, the ensemble by each of
    total, aleatoric and epistemic), so rounds can be compared on what their confidence is worth.

    EMENet-VA members hear each video's audio (decoded once into `audio_dir`, see `create_annotations`).
    """
    from emenet.evaluation import calibration as C
    models = load_members(members, device)
    tasks = tuple(t for t in models[0].tasks if t in EMOTION_TASKS)
    index = load_affwild2_index(data_root, cache_dir=cache_dir, annotations_dir=annotations_dir, crops_dirs=crops_dirs)
    videos = attach_audio_for(models, labeled_videos(index, "Validation_Set", tasks), index, audio_dir, cache_dir,
                              progress)
    n = len(members)
    scores = [M.ChallengeMetrics(tasks, models[0].config.num_expr_classes) for _ in range(n + 1)]
    collected: list[dict[str, list]] = [{t: [] for t in tasks} for _ in range(n + 1)]  # probabilities per method
    labels_all: dict[str, list] = {t: [] for t in tasks}
    uncert: dict[str, list] = {}
    frame_unc: list[dict[str, dict[str, list]]] = [{t: {} for t in tasks} for _ in range(n + 1)]  # annotated frames
    for vid, member_logits in stream_ensemble_logits(models, videos, chunk, 112, device, 0, progress):
        video = videos[vid]
        member_probs = [_probs(lg, tasks) for lg in member_logits]
        mean_probs = {t: torch.stack([p[t] for p in member_probs]).mean(0) for t in tasks}
        unc = ensemble_task_uncertainty({t: torch.stack([p[t] for p in member_probs]) for t in tasks})
        member_unc = [ensemble_task_uncertainty({t: p[t][None] for t in tasks}) for p in member_probs]
        for t in tasks:
            if t not in video.labels:
                continue
            keep = video.masks[t].any(axis=1)
            label = np.where(video.masks[t], video.labels[t], TASKS[t].missing_value)[keep]
            label = TASKS[t].frame_values(label)
            labels_all[t].append(label)
            for i, probs in enumerate(member_probs + [mean_probs]):
                p = probs[t][torch.from_numpy(keep)]
                scores[i].update(t, decode(t, p).numpy(), label)
                collected[i][t].append(p.numpy())
                source = unc if i == n else member_unc[i]
                for kind in (ENSEMBLE_SCORES if i == n else SINGLE_MODEL_SCORES):
                    frame_unc[i][t].setdefault(kind, []).append(source[t][kind][torch.from_numpy(keep)].numpy())
            for kind, value in unc[t].items():
                uncert.setdefault(f"{t}_{kind}_uncertainty", []).append(value[torch.from_numpy(keep)].mean().item())
    rows = []
    for i in range(n + 1):
        row = {"method": members[i].name if i < n else "ensemble", "epoch": members[i].epoch if i < n else -1}
        row.update(scores[i].compute())
        have = [t for t in tasks if labels_all[t]]
        row.update(C.calibration_scores({t: np.concatenate(collected[i][t]) for t in have},
                                        {t: np.concatenate(labels_all[t]) for t in have}))
        if i == n:
            row.update({k: float(np.mean(v)) for k, v in uncert.items()})
        sel_rows, _ = selective_rows(row["method"], {t: np.concatenate(collected[i][t]) for t in have},
                                     {t: np.concatenate(labels_all[t]) for t in have},
                                     {t: {k: np.concatenate(v) for k, v in frame_unc[i][t].items()} for t in have},
                                     ENSEMBLE_SCORES if i == n else SINGLE_MODEL_SCORES)
        for sel in sel_rows:
            row.update({f"sel_{sel['score']}_{k}": v for k, v in sel.items() if k not in ("method", "score")})
        rows.append(row)
    return rows
