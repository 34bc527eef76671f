"""Selective prediction in the ensemble validation and the distillation summary.

For each method (member, ensemble, temperature scaling, MC dropout) and each uncertainty score
it has (a single model: total; an ensemble or MC dropout: total, aleatoric, epistemic), the
risk-coverage scores of emenet.evaluation.selective per task, on annotated frames. A method's own
predictions are scored; only the ordering of frames comes from the uncertainty score.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from emenet.decoding import decode
from emenet.reporting import markdown_table
from emenet.evaluation.selective import REPORT_COVERAGES, curves_table, selective_columns, task_losses, task_selective_scores
from emenet.tasks import TASKS, TaskKind

SINGLE_MODEL_SCORES: tuple[str, ...] = ("total",)
ENSEMBLE_SCORES: tuple[str, ...] = ("total", "aleatoric", "epistemic")


def scores_of(method: str) -> tuple[str, ...]:
    """The uncertainty scores a method has: aleatoric and epistemic only with several models or passes."""
    return ENSEMBLE_SCORES if method in ("ensemble", "mc_dropout") else SINGLE_MODEL_SCORES


def frame_uncertainty(task: str, u: np.ndarray) -> np.ndarray:
    """Per-frame uncertainty: AU (n, 12) -> mean over AUs (n,); EXPR (n,); VA (n, 2) kept per dimension."""
    u = np.asarray(u, dtype=np.float64)
    return u.mean(axis=1) if TASKS[task].kind is TaskKind.MULTILABEL and u.ndim == 2 else u


def selective_rows(method: str, probs: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray],
                   uncertainty: Mapping[str, Mapping[str, np.ndarray]], scores: Sequence[str]
                   ) -> tuple[list[dict], dict[str, dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]]]:
    """One row per uncertainty score (all tasks' selective columns) and the curves' (u, loss) per task.

    `probs`, `labels`: task -> annotated frames (emenet.evaluation.metrics' form); `uncertainty`: task ->
    score -> per-frame values on the same frames. Curves: task -> "<method> <score>" -> curve -> (u, loss).
    """
    rows, curves = [], {}
    preds = {t: decode(t, torch.from_numpy(np.asarray(p))).numpy() for t, p in probs.items()}
    for score in scores:
        row: dict[str, object] = {"method": method, "score": score}
        for task, pred in preds.items():
            u = frame_uncertainty(task, uncertainty[task][score])
            row.update(task_selective_scores(task, pred, labels[task], u))
            curves.setdefault(task, {})[f"{method} {score}"] = task_losses(task, pred, labels[task], u)
        rows.append(row)
    return rows, curves


def main_columns(tasks: Sequence[str], coverages: Sequence[float] = REPORT_COVERAGES) -> list[str]:
    """The columns of the markdown table: per curve AURC, excess AURC and the risk at each coverage."""
    cols = []
    for t in tasks:
        prefixes, kept_scores = selective_columns(t)
        for p in prefixes:
            cols += [f"{p}_aurc", f"{p}_eaurc"] + [f"{p}_at{round(100 * c)}" for c in coverages]
        cols += [f"{name}_at{round(100 * c)}" for name in kept_scores for c in coverages]
    return cols


def selective_markdown(table: pd.DataFrame, tasks: Sequence[str]) -> str:
    """One markdown table per task: method, score and that task's selective columns."""
    parts = ["## Selective prediction, evaluation half", "",
             "Frames kept in order of increasing uncertainty. aurc: area under the risk-coverage curve "
             "(mean risk over all coverages); eaurc: aurc minus the oracle's (ordering by the true loss; "
             "0 is perfect); at<c>: risk, or F1/CCC, of the c% most certain frames. Risks: EXPR error rate, "
             "AU share of wrong decisions per frame, valence/arousal absolute error.", ""]
    all_cols = main_columns(tasks)
    for task in tasks:
        cols = [c for c in main_columns([task]) if c in table.columns and c in all_cols]
        if cols:
            parts += [f"### {task}", "", markdown_table(table[["method", "score", *cols]]), ""]
    return "\n".join(parts)


def curves_frame(curves: Mapping[str, Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]]) -> pd.DataFrame:
    """Sampled curves of every task as one long table (task, score, curve, coverage, risk)."""
    rows = []
    for task, per_score in curves.items():
        rows += [{"task": task, **r} for r in curves_table(per_score)]
    return pd.DataFrame(rows, columns=["task", "score", "curve", "coverage", "risk"])
