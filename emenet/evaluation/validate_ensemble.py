"""Validate a deep ensemble: accuracy, calibration and uncertainty of each member, the ensemble,
and two single-model baselines, on the validation split.

Methods (one row each): `member_<i>` (each checkpoint alone), `ensemble` (the mean of the
members' probabilities), `temperature_scaled` (member 0 with per-head temperatures fitted on
one half of the validation videos, see emenet.evaluation.calibration) and `mc_dropout` (member 0 with its
dropout active, `mc_dropout_passes` passes averaged).

Temperatures are fitted on the *calibration half* of the videos (whole videos, so no frame of
an evaluated video was seen; two face tracks of one video stay together) and every method is
also scored on the other, *evaluation half*, where the baseline's numbers are comparable.

The videos are read once: each chunk of crops goes through every member, and member 0's
backbone features are reused by its MC-dropout passes (the dropout sits after the backbone).

Files under `out_dir` (written atomically; existing ones are kept unless `overwrite`):

    metrics.csv               one row per method; `models` names its checkpoints (name@epoch).
                              Columns, on the whole validation split: the
                              challenge metrics (emenet.evaluation.metrics' flat keys: AU_score, EXPR_f1,
                              VA_ccc_valence, total_score, ...), calibration (emenet.evaluation.calibration:
                              EXPR_ece, AU_nll, AU_ece_AU12, VA_valence_brier, ...) and mean
                              normalized-entropy uncertainty (unc_<TASK>_<total|aleatoric|epistemic>);
                              the same prefixed `eval_` on the evaluation half. The whole-split
                              columns of temperature_scaled are empty: half of it fitted T.
    metrics.md                the main columns as markdown tables
    summary.json              members, videos of each half, temperatures, settings
    reliability/<method>.png  reliability diagrams (EXPR, AU pooled, valence, arousal), evaluation half
    selective.csv             selective prediction on the evaluation half: one row per method and
                              uncertainty score (total; aleatoric and epistemic for the ensemble and
                              MC dropout), per task AURC, excess AURC and the risk at 50/80/90%
                              coverage (emenet.evaluation.selective); also a section of metrics.md
    selective_curves.csv      the risk-coverage curves sampled at 101 coverages
    selective/<task>.png      the curves of every method and score, with the oracle

    >>> members = members_from_names(["t0", "t1", "t2"], [4], "checkpoints")  # doctest: +SKIP
    >>> result = validate_ensemble(members, "data/synth", "runs/ensemble_val")  # doctest: +SKIP
    >>> result.table.set_index("method")["eval_EXPR_ece"]  # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from emenet.evaluation import metrics as M
from emenet.audio import window_length
from emenet.evaluation.calibration import (N_BINS, TemperatureScaling, calibration_scores, dropout_modules,
                                fit_temperature_scaling, mc_dropout_heads, stack_probs, task_reliability)
from emenet.data.affwild2 import load_affwild2_index
from emenet.data.clips import LabeledVideo
from emenet.data.labeled import labeled_videos
from emenet.decoding import decode
from emenet.distill.members import Member, load_members
from emenet.evaluation.selective_report import curves_frame, scores_of, selective_markdown, selective_rows
from emenet.errors import EMENetInputError
from emenet.io_utils import atomic_path, check_no_file_in_the_way, write_atomic, write_json
from emenet.reporting import markdown_table
from emenet.models.emenet import EMENet
from emenet.training.evaluate import StreamHook, attach_audio_for, concat_parts, stream_logits
from emenet.tasks import EMOTION_TASKS, TASKS
from emenet.uncertainty import ensemble_task_uncertainty

log = logging.getLogger(__name__)

ENSEMBLE, TEMPERATURE_SCALED, MC_DROPOUT = "ensemble", "temperature_scaled", "mc_dropout"
UNCERTAINTY_MEASURES: tuple[str, ...] = ("total", "aleatoric", "epistemic")
EVAL_PREFIX = "eval_"
RELIABILITY_DIR = "reliability"
SELECTIVE_DIR = "selective"


def member_method(i: int) -> str:
    return f"member_{i}"


def method_names(num_members: int, mc_dropout_passes: int) -> list[str]:
    names = [member_method(i) for i in range(num_members)] + [ENSEMBLE, TEMPERATURE_SCALED]
    return names + ([MC_DROPOUT] if mc_dropout_passes > 0 else [])


def output_paths(out_dir: str | os.PathLike, methods: Sequence[str]) -> list[Path]:
    out = Path(out_dir)
    return [out / "metrics.csv", out / "metrics.md", out / "summary.json", out / "selective.csv",
            out / "selective_curves.csv", *(out / RELIABILITY_DIR / f"{m}.png" for m in methods)]


def check_outputs_free(paths: Sequence[Path], overwrite: bool) -> None:
    """Refuse, before any work, to replace existing outputs unless `overwrite`, or to write
    where a file stands in place of their folder."""
    for folder in sorted({p.parent for p in paths}):
        check_no_file_in_the_way(folder)
    if overwrite:
        return
    existing = [p for p in paths if p.exists()]
    if existing:
        raise EMENetInputError(f"{existing[0]} already exists ({len(existing)} output file(s) in the way); "
                               f"pass --overwrite to replace them")


def check_device(device: str) -> None:
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise EMENetInputError(f"--device {device}: CUDA is not available on this machine")


def load_visual_members(members: Sequence[Member], device: str) -> tuple[list[EMENet], tuple[str, ...]]:
    """Load the members (checked to share their tasks) and their emotion tasks."""
    models = _load_nonempty(members, device)
    for m, model in zip(members, models):
        if model.uses_audio:
            raise EMENetInputError(f"{m.checkpoint}: an EMENet-VA (audio-visual) model; this validation takes visual "
                                   f"EMENet-V members")
    return models, _emotion_tasks(members, models)


def load_ensemble_members(members: Sequence[Member], device: str, window_size: float | None = None,
                          sample_rate: int | None = None) -> tuple[list[EMENet], tuple[str, ...]]:
    """Load visual and audio-visual members alike (checked to share their tasks), and their emotion tasks.

    `window_size` (s) and `sample_rate` (Hz), when given, must be what the EMENet-VA members were
    trained with (their checkpoints record it): the audio windows are cut to match.
    """
    models = _load_nonempty(members, device)
    for m, model in zip(members, models):
        if not model.uses_audio:
            continue
        cfg = model.config
        if sample_rate is not None and sample_rate != cfg.sample_rate:
            raise EMENetInputError(f"{m.checkpoint}: trained on {cfg.sample_rate} Hz audio, but --sr is {sample_rate}")
        if window_size is not None and window_length(window_size, cfg.sample_rate) != cfg.audio_window:
            raise EMENetInputError(f"{m.checkpoint}: trained on {cfg.window_seconds:g} s audio windows "
                                   f"({cfg.audio_window} samples), but --window_size is {window_size:g}")
    return models, _emotion_tasks(members, models)


def _load_nonempty(members: Sequence[Member], device: str) -> list[EMENet]:
    """Load the members (checked to share their tasks); at least one must be given."""
    if not members:
        raise EMENetInputError("no ensemble members given (--names)")
    return load_members(list(members), device)


def _emotion_tasks(members: Sequence[Member], models: Sequence[EMENet]) -> tuple[str, ...]:
    """The emotion tasks the (task-sharing) members predict; at least one."""
    tasks = tuple(t for t in models[0].tasks if t in EMOTION_TASKS)
    if not tasks:
        raise EMENetInputError(f"{members[0].checkpoint}: the model predicts none of {list(EMOTION_TASKS)}")
    return tasks


# --- halves of the validation videos -----------------------------------------------------------

def split_held_out_videos(models: list, tasks: Sequence[str], data_root: str | os.PathLike, split: str,
                          fraction: float, seed: int, max_videos: int | None, audio_dir: str | None,
                          cache_dir: str | None, progress: bool) -> tuple[list[LabeledVideo], list[int], list[int]]:
    """The split's annotated videos (with audio windows for audio-visual members) and their
    (calibration, evaluation) halves by whole source video (`split_videos`)."""
    index = load_affwild2_index(data_root, cache_dir=cache_dir)
    videos = labeled_videos(index, split, tasks, max_videos=max_videos)
    if not videos:
        raise EMENetInputError(f"{data_root}: no {split} videos annotated for {list(tasks)}")
    videos = attach_audio_for(models, videos, index, audio_dir, cache_dir, progress)
    groups = dict(zip(index.videos["name"].astype(str), index.videos["video"].astype(str)))
    return videos, *split_videos(videos, fraction, seed, groups)


def split_videos(videos: Sequence[LabeledVideo], fraction: float, seed: int,
                 groups: dict[str, str] | None = None) -> tuple[list[int], list[int]]:
    """(calibration, evaluation) positions in `videos`: a seeded split by whole source video.

    Names of one source video (`groups`: name -> video, e.g. video6_left/right -> video6) stay
    together. Units are shuffled, ordered by the set of tasks they are annotated for, then picked
    evenly, so each half gets its share of every kind of annotation. Both halves are non-empty.
    """
    if not 0.0 < fraction < 1.0:
        raise EMENetInputError(f"--calibration_split_fraction must be strictly between 0 and 1, got {fraction}")
    groups = groups or {}
    units: dict[str, list[int]] = {}
    for i, v in enumerate(videos):
        units.setdefault(groups.get(v.name, v.name), []).append(i)
    if len(units) < 2:
        raise EMENetInputError(f"temperature scaling needs at least 2 validation videos (one to fit, one to "
                               f"evaluate), got {len(units)}")
    keys = sorted(units)
    order = np.random.default_rng(seed).permutation(len(keys))
    signature = {k: tuple(sorted({t for i in units[k] for t in videos[i].labels})) for k in keys}
    ordered = sorted((keys[j] for j in order), key=lambda k: signature[k])  # stable: shuffled within a signature
    n = len(ordered)
    n_calibration = min(n - 1, max(1, round(fraction * n)))
    picked = [(k + 1) * n_calibration // n > k * n_calibration // n for k in range(n)]  # evenly spaced picks
    calibration = sorted(i for k, p in zip(ordered, picked) if p for i in units[k])
    evaluation = sorted(i for k, p in zip(ordered, picked) if not p for i in units[k])
    return calibration, evaluation


# --- one pass over the videos ------------------------------------------------------------------

def _rng_devices(device: str | torch.device) -> list[int]:
    dev = torch.device(device)
    if dev.type != "cuda":
        return []
    return [dev.index if dev.index is not None else torch.cuda.current_device()]


def _numpy_logits(logits: dict[str, torch.Tensor], tasks: Sequence[str]) -> dict[str, np.ndarray]:
    return {t: logits[t][0].float().cpu().numpy() for t in tasks}  # (t, C) of the batch's one clip


class MCDropoutPasses(StreamHook):
    """`passes` MC-dropout passes of member `member` on its backbone features, reused from its
    eval pass (EMENet's dropout sits after the backbone), each pass carrying its own state.
    Masks are seeded per chunk from `seed` (torch's global generator is left as it was), so the
    passes are reproducible; `video_logits()` holds the current video's, per pass task -> (n, C)."""

    def __init__(self, member: int, passes: int, seed: int, device: str | torch.device, tasks: Sequence[str]):
        self.member, self.passes, self.seed, self.device, self.tasks = member, passes, seed, device, tasks
        self.start_video()

    def start_video(self) -> None:
        self.hidden = None
        self.parts: list[list[dict[str, np.ndarray]]] = [[] for _ in range(self.passes)]

    def on_features(self, step: int, member: int, model: EMENet, features: torch.Tensor) -> None:
        if member != self.member:
            return
        with torch.random.fork_rng(devices=_rng_devices(self.device)):
            torch.manual_seed(self.seed * 1_000_003 + step)
            passes, self.hidden = mc_dropout_heads(model, features, self.passes, self.hidden)
        for p, pass_logits in enumerate(passes):
            self.parts[p].append(_numpy_logits(pass_logits, self.tasks))

    def video_logits(self) -> list[dict[str, np.ndarray]]:
        return [concat_parts(p) for p in self.parts]


def stream_members_and_mc_dropout(models: Sequence[EMENet], videos: Sequence[LabeledVideo], tasks: Sequence[str],
                                  mc_dropout_passes: int = 10, mc_member: int = 0, chunk: int = 64,
                                  device: str | torch.device = "cpu", num_workers: int = 0, seed: int = 0,
                                  progress: bool = True
                                  ) -> Iterator[tuple[int, list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]]:
    """Yield (video position, per member task -> logits (n, C), per MC pass task -> logits (n, C)).

    One pass over the crops (and audio windows, for EMENet-VA members: attach the videos' audio
    first) with `emenet.training.evaluate.stream_logits`: every member runs in eval mode carrying
    its hidden state, and member `mc_member`'s features feed its MC-dropout passes (`MCDropoutPasses`).
    """
    mc = MCDropoutPasses(mc_member, mc_dropout_passes, seed, device, tasks)
    for vid, logits in stream_logits(models, videos, chunk=chunk, device=device, num_workers=num_workers, tasks=tasks,
                                     hooks=[mc] if mc_dropout_passes > 0 else [], progress=progress,
                                     desc="members + MC dropout"):
        yield vid, logits, mc.video_logits()


# --- per-method outputs and scores -------------------------------------------------------------

@dataclass
class MethodOutputs:
    """One method's outputs on one video: mean probabilities and per-frame uncertainty."""

    probs: dict[str, np.ndarray]  # task -> (n, ...) as decoding.task_probs
    uncertainty: dict[str, dict[str, np.ndarray]]  # task -> measure -> EXPR (n,), AU (n, 12), VA (n, 2)

    @classmethod
    def from_logits(cls, logits_per_model: Sequence[dict[str, np.ndarray]]) -> "MethodOutputs":
        """From M models' (or passes') logits: M = 1 gives aleatoric = total, epistemic = 0."""
        stack = stack_probs(logits_per_model)  # task -> (M, n, ...)
        unc = ensemble_task_uncertainty(stack)
        per_frame = {t: {m: v.numpy() for m, v in u.items()} for t, u in unc.items()}
        return cls({t: p.mean(dim=0).numpy() for t, p in stack.items()}, per_frame)


def task_label_array(video: LabeledVideo, task: str) -> np.ndarray | None:
    """A video's labels of `task` with the challenge's missing values (emenet.evaluation.metrics' form), or None."""
    if task not in video.labels:
        return None
    labels = np.where(video.masks[task], video.labels[task], TASKS[task].missing_value)
    return TASKS[task].frame_values(labels)


def score_method(videos: Sequence[LabeledVideo], outputs: Sequence[MethodOutputs], subset: Sequence[int],
                 tasks: Sequence[str], n_bins: int = N_BINS
                 ) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Flat scores of one method over the videos `subset`, and the annotated (probs, labels) per task.

    Challenge metrics and calibration use the annotated frames; mean uncertainty all frames.
    """
    flat, probs, labels, _ = score_method_frames(videos, outputs, subset, tasks, n_bins)
    return flat, probs, labels


def score_method_frames(videos: Sequence[LabeledVideo], outputs: Sequence[MethodOutputs], subset: Sequence[int],
                        tasks: Sequence[str], n_bins: int = N_BINS
                        ) -> tuple[dict[str, float], dict[str, np.ndarray], dict[str, np.ndarray],
                                   dict[str, dict[str, np.ndarray]]]:
    """`score_method`, plus the uncertainty (task -> measure -> values) of the annotated frames."""
    flat: dict[str, float] = {"num_videos": float(len(subset)),
                              "num_frames": float(sum(len(videos[i].frames) for i in subset))}
    probs, labels, uncertainty = {}, {}, {}
    for task in tasks:
        p_parts, y_parts, u_parts = [], [], []
        for i in subset:
            y = task_label_array(videos[i], task)
            if y is None:
                continue
            keep = videos[i].masks[task].any(axis=1)
            p_parts.append(outputs[i].probs[task][keep])
            y_parts.append(y[keep])
            u_parts.append({m: u[keep] for m, u in outputs[i].uncertainty[task].items()})
        if p_parts and sum(len(y) for y in y_parts):
            probs[task], labels[task] = np.concatenate(p_parts), np.concatenate(y_parts)
            uncertainty[task] = {m: np.concatenate([u[m] for u in u_parts]) for m in UNCERTAINTY_MEASURES}
    if probs:
        preds = {t: decode(t, torch.from_numpy(p)).numpy() for t, p in probs.items()}
        num_classes = probs["EXPR"].shape[-1] if "EXPR" in probs else 7  # 8 with `Other`
        flat.update(M.flatten_scores(M.challenge_scores(preds, labels, num_classes)))
        flat.update(calibration_scores(probs, labels, n_bins))
    for task in tasks:
        for measure in UNCERTAINTY_MEASURES:
            values = np.concatenate([outputs[i].uncertainty[task][measure] for i in subset])
            flat[f"unc_{task}_{measure}"] = float(values.mean()) if values.size else float("nan")
    return flat, probs, labels, uncertainty


def temperature_fit_data(videos: Sequence[LabeledVideo], logits: Sequence[dict[str, np.ndarray]],
                         subset: Sequence[int], tasks: Sequence[str]
                         ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Concatenated logits and labels (missing values kept) of the `subset` videos annotated per task."""
    fit_logits, fit_labels = {}, {}
    for task in tasks:
        pairs = [(logits[i][task], task_label_array(videos[i], task)) for i in subset]
        pairs = [(z, y) for z, y in pairs if y is not None]
        if pairs:
            fit_logits[task] = np.concatenate([z for z, _ in pairs])
            fit_labels[task] = np.concatenate([y for _, y in pairs])
    return fit_logits, fit_labels


def method_outputs(method: str, member_logits: Sequence[Sequence[dict[str, np.ndarray]]],
                   mc_outputs: Sequence[MethodOutputs], scaling: TemperatureScaling) -> list[MethodOutputs]:
    """A method's outputs per video, from the members' logits (member -> video -> task -> (n, C))."""
    if method.startswith("member_"):
        return [MethodOutputs.from_logits([z]) for z in member_logits[int(method.rsplit("_", 1)[1])]]
    if method == ENSEMBLE:
        return [MethodOutputs.from_logits(list(per_video)) for per_video in zip(*member_logits)]
    if method == TEMPERATURE_SCALED:
        return [MethodOutputs.from_logits([scaling.scale_all({t: torch.from_numpy(z) for t, z in logits.items()})])
                for logits in member_logits[0]]
    if method == MC_DROPOUT:
        return list(mc_outputs)
    raise ValueError(f"unknown method {method!r}")


def _method_models(method: str, members: Sequence[Member]) -> str:
    """Which checkpoints a method uses, as name@epoch."""
    tag = [f"{m.name}@{m.epoch}" for m in members]
    if method.startswith("member_"):
        return tag[int(method.rsplit("_", 1)[1])]
    return "+".join(tag) if method == ENSEMBLE else tag[0]


# --- the report --------------------------------------------------------------------------------

@dataclass
class EnsembleValidation:
    table: pd.DataFrame  # one row per method, the columns of metrics.csv
    temperatures: dict[str, list[float]]
    calibration_videos: list[str]
    evaluation_videos: list[str]
    files: list[Path]


def markdown_columns(table: pd.DataFrame, columns: Sequence[str], names: Sequence[str] | None = None,
                     key: str = "method") -> str:
    """A markdown table of `table`'s `key` column and `columns` (headed `names`; missing ones are NaN)."""
    picked = pd.DataFrame({key: table[key]})
    for column, name in zip(columns, names or columns):
        picked[name] = table[column] if column in table.columns else np.nan
    return markdown_table(picked)


def _calibration_columns(tasks: Sequence[str], prefix: str = "") -> list[str]:
    return [f"{prefix}{t}_{k}" for t in tasks for k in ("ece", "nll", "brier")]


def _metric_columns(tasks: Sequence[str], prefix: str = "") -> list[str]:
    cols = {"AU": ["AU_score"], "EXPR": ["EXPR_score"], "VA": ["VA_ccc_valence", "VA_ccc_arousal"]}
    return [prefix + c for t in tasks for c in cols[t]] + [prefix + "total_score"]


def metrics_markdown(table: pd.DataFrame, tasks: Sequence[str], summary: dict) -> str:
    members = ", ".join(f"{m['name']}@{m['epoch']}" for m in summary["members"])
    temps = "; ".join(f"{t} {', '.join(f'{v:.3f}' for v in ts)}" for t, ts in summary["temperatures"].items())
    unc_cols = [f"unc_{t}_{m}" for t in tasks for m in UNCERTAINTY_MEASURES]
    parts = [
        "# Ensemble validation", "",
        f"Members: {members}. Split {summary['split']}: {len(summary['videos'])} video(s). Temperatures of member 0, "
        f"fitted on {len(summary['calibration_videos'])} calibration video(s): {temps}. MC dropout: "
        f"{summary['mc_dropout_passes']} passes of member 0. Evaluation half: {len(summary['evaluation_videos'])} "
        f"video(s).",
        "", "## Challenge metrics, whole validation split", "", markdown_columns(table, _metric_columns(tasks)),
        "", "## Challenge metrics, evaluation half", "",
        markdown_columns(table, _metric_columns(tasks, EVAL_PREFIX), _metric_columns(tasks)),
        "", "## Calibration, evaluation half (all methods comparable)", "",
        markdown_columns(table, _calibration_columns(tasks, EVAL_PREFIX), _calibration_columns(tasks)),
        "", "## Calibration, whole validation split (temperature scaling left out: fitted on half of it)", "",
        markdown_columns(table, _calibration_columns(tasks)),
        "", "## Mean uncertainty (normalized entropy), whole validation split", "",
        markdown_columns(table, unc_cols, [c[len("unc_"):] for c in unc_cols]),
        "", "ECE: 10 equal-width bins; EXPR and VA (20 bins per dimension vs the digitised label) top-label, "
            "AU binary over p(active), averaged over AUs. NLL in nats. Brier: sum over classes (EXPR, VA), "
            "squared error (AU).", "",
    ]
    return "\n".join(parts)


def _save_figure(fig, path: Path, overwrite: bool) -> None:
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100), overwrite)


def validate_ensemble(members: Sequence[Member], data_root: str | os.PathLike, out_dir: str | os.PathLike, *,
                      split: str = "Validation_Set", mc_dropout_passes: int = 10,
                      calibration_split_fraction: float = 0.5, seed: int = 0, n_bins: int = N_BINS,
                      au_temperature_per_unit: bool = False, chunk: int = 64, device: str = "cpu",
                      num_workers: int = 0, cache_dir: str | os.PathLike | None = None, max_videos: int | None = None,
                      overwrite: bool = False, progress: bool = True, audio_dir: str | os.PathLike | None = None,
                      window_size: float | None = None, sample_rate: int | None = None) -> EnsembleValidation:
    """Score members, ensemble, temperature scaling and MC dropout on `split`; write the files above.

    EMENet-VA members are supported: each video's audio is decoded once into `audio_dir`
    (default `<cache_dir>/audio`, else `<data_root>/.emenet_cache/audio`); `window_size` and
    `sample_rate`, when given, are checked against what the members were trained with.
    """
    from emenet.viz.reliability import plot_reliability  # matplotlib only when writing figures
    from emenet.viz.selective import plot_risk_coverage

    if mc_dropout_passes < 0:
        raise EMENetInputError(f"--mc_dropout_passes must be >= 0, got {mc_dropout_passes}")
    if chunk < 1:
        raise EMENetInputError(f"--chunk must be >= 1, got {chunk}")
    if n_bins < 1:
        raise EMENetInputError(f"--n_bins must be >= 1, got {n_bins}")
    check_device(device)
    methods = method_names(len(members), mc_dropout_passes)
    paths = output_paths(out_dir, methods)
    check_outputs_free(paths, overwrite)
    models, tasks = load_ensemble_members(members, device, window_size, sample_rate)
    videos, calibration, evaluation = split_held_out_videos(models, tasks, data_root, split, calibration_split_fraction,
                                                            seed, max_videos, audio_dir, cache_dir, progress)

    if mc_dropout_passes and all(m.p == 0 for m in dropout_modules(models[0])):
        log.warning("member 0 has dropout 0: its MC-dropout passes are all the same model")
    member_logits: list[list[dict[str, np.ndarray]]] = [[{}] * len(videos) for _ in models]  # member -> video -> logits
    mc_outputs: list[MethodOutputs] = []
    for vid, logits, mc_logits in stream_members_and_mc_dropout(models, videos, tasks, mc_dropout_passes, 0, chunk,
                                                                device, num_workers, seed, progress):
        for i, z in enumerate(logits):
            member_logits[i][vid] = z
        if mc_dropout_passes:
            mc_outputs.append(MethodOutputs.from_logits(mc_logits))  # videos come in order

    fit_logits, fit_labels = temperature_fit_data(videos, member_logits[0], calibration, tasks)
    for task in tasks:
        if task not in fit_logits:
            log.warning("no calibration video is annotated for %s; its temperature stays 1", task)
    scaling: TemperatureScaling = fit_temperature_scaling(fit_logits, fit_labels, au_per_unit=au_temperature_per_unit)

    rows, reliability, selective, curves = [], {}, [], {}
    everything = list(range(len(videos)))
    for method in tqdm(methods, desc="score", disable=not progress, leave=False):
        outputs = method_outputs(method, member_logits, mc_outputs, scaling)
        row: dict[str, object] = {"method": method, "models": _method_models(method, members)}
        if method != TEMPERATURE_SCALED:
            row.update(score_method(videos, outputs, everything, tasks, n_bins)[0])
        eval_scores, eval_probs, eval_labels, eval_unc = score_method_frames(videos, outputs, evaluation, tasks, n_bins)
        row.update({EVAL_PREFIX + k: v for k, v in eval_scores.items()})
        rows.append(row)
        method_rows, method_curves = selective_rows(method, eval_probs, eval_labels, eval_unc, scores_of(method))
        selective += method_rows
        for task, per_score in method_curves.items():
            curves.setdefault(task, {}).update(per_score)
        panels = {}
        for task in tasks:
            if task in eval_probs:
                panels.update(task_reliability(task, eval_probs[task], eval_labels[task], n_bins))
        reliability[method] = panels
    table = pd.DataFrame(rows)
    selective_table = pd.DataFrame(selective)

    summary = {"members": [m.to_dict() for m in members], "tasks": list(tasks), "split": split,
               "data_root": str(Path(data_root).resolve()), "videos": [v.name for v in videos],
               "calibration_videos": [videos[i].name for i in calibration],
               "evaluation_videos": [videos[i].name for i in evaluation], "temperatures": scaling.to_dict(),
               "au_temperature_per_unit": au_temperature_per_unit, "mc_dropout_passes": mc_dropout_passes,
               "calibration_split_fraction": calibration_split_fraction, "seed": seed, "n_bins": n_bins,
               "methods": methods}
    out = Path(out_dir)
    with atomic_path(out / "metrics.csv", overwrite) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(out / "selective.csv", overwrite) as tmp:
        selective_table.to_csv(tmp, index=False)
    with atomic_path(out / "selective_curves.csv", overwrite) as tmp:
        curves_frame(curves).to_csv(tmp, index=False)
    markdown = metrics_markdown(table, tasks, summary) + "\n" + selective_markdown(selective_table, tasks)
    write_atomic(out / "metrics.md", lambda p: p.write_text(markdown), overwrite)
    write_json(out / "summary.json", summary, overwrite)
    for method, panels in reliability.items():
        if panels:
            _save_figure(plot_reliability(panels, title=f"{method}, evaluation half"),
                         out / RELIABILITY_DIR / f"{method}.png", overwrite)
    for task, per_score in curves.items():
        _save_figure(plot_risk_coverage(per_score, title=f"{task}: risk-coverage, evaluation half"),
                     out / SELECTIVE_DIR / f"{task}.png", overwrite)
    log.info("ensemble validation written to %s", out)
    return EnsembleValidation(table, scaling.to_dict(), summary["calibration_videos"], summary["evaluation_videos"],
                              [p for p in paths if p.exists()])
