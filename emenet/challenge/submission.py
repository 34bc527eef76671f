"""Challenge submission files of an ensemble on the test set, and their score against ground truth.

Each member streams over each test name's face crops in frame order, carrying its GRU hidden
state from chunk to chunk (the backbone runs over `batch_size` frames at once); crops are read
by a thread pool one chunk ahead of the models. The ensemble merge is the original test
script's: AU = mean probability > 0.5, EXPR = argmax of the mean softmax, VA = mean of the
members' expectations. Unlike the original, whose GRU recurred across the batch axis in
batched inference (reference README, section 3), the recurrence runs over time.

Files under `save_dir` (every one written atomically):

    submission.json                         the members (label, checkpoint) and the test-set file
    <member>/<AU|EXPR|VA>/<name>.txt        challenge format, one member
    merged/<AU|EXPR|VA>/<name>.txt          challenge format, the ensemble
    <member>_with_uncertainty/<TASK>/<name>.csv
    merged_with_uncertainty/<TASK>/<name>.csv

Challenge format (reference README, section 2): the task's header, then one row per video
frame: AU `0,1,...` (12 values), EXPR one class index 0..6, VA `valence,arousal`. Frames
without a crop repeat the prediction of the nearest earlier frame that has one (the first
crop's before the first crop).

The `_with_uncertainty` CSVs have the same rows, with a header, columns:
`frame` (1-based), `has_crop` (1 where the frame has its own crop), `source_frame` (the frame
whose prediction the row holds), the challenge columns (AU: `AU1`..`AU26`; EXPR: `expression`;
VA: `valence`, `arousal`), the probabilities (AU: `AU1_prob`...; EXPR: `Neutral_prob`...), and
normalized-entropy uncertainty in [0, 1]: `AU1_uncertainty`..., `expression_uncertainty`,
`valence_uncertainty`, `arousal_uncertainty`; in merged files of an ensemble that is the total,
split into `*_aleatoric` + `*_epistemic` beside it.

A test name is done when every file of it exists; a rerun skips done names (and refuses a
save_dir written by other members) unless `overwrite`.

    >>> members = members_from_names(["t0", "t1"], [4, 6], "checkpoints")  # doctest: +SKIP
    >>> write_submission(members, "test_set.parquet", "submission/")  # doctest: +SKIP
    >>> score_submission("submission/merged", "data/synth/synthetic_ground_truth", "test_set.parquet")  # doctest: +SKIP
"""
from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from emenet.audio import SAMPLE_RATE as AUDIO_SAMPLE_RATE
from emenet.audio import frame_windows, read_audio_track
from emenet.conformal.apply import ConformalSettings, conformal_from_args, prediction_columns, task_columns
from emenet.data.annotations import read_annotation_file, read_annotation_file_with_classes
from emenet.data.images import read_rgb
from emenet.decoding import decode
from emenet.errors import EMENetInputError
from emenet.inference.predictor import Predictor
from emenet.run_layout import checkpoint_path, pair_names_and_epochs
from emenet.inference.results import FramePredictions, TaskUncertainty
from emenet.challenge.test_set import SUBMISSION_TASKS, TestSet, TestVideo, read_test_set
from emenet.video.predict import fill_index
from emenet.io_utils import atomic_path, write_json
from emenet.models.mobilefacenet import INPUT_SIZE
from emenet.tasks import TASKS, task_spec
from emenet.uncertainty import ensemble_task_uncertainty

log = logging.getLogger(__name__)

MERGED = "merged"
UNCERTAINTY_SUFFIX = "_with_uncertainty"
MANIFEST = "submission.json"
FORMAT = "emenet-submission-1"
# Folder of each task's files, in the submission and in ground truth (annotation-style *_Set also accepted).
TASK_DIRS: dict[str, str] = {"AU": "AU", "EXPR": "EXPR", "VA": "VA"}
# Digits of the numbers written: VA values in the challenge files; probabilities and
# uncertainty in the CSVs (9 significant digits give float32 back exactly).
VA_FORMAT = TASKS["VA"].value_format
CSV_FLOAT_FORMAT = "%.9g"
_PROB_FIELDS = {"AU": "au_probs", "EXPR": "expr_probs", "VA": "va_probs"}


# ------------------------------------------------------------------------------ members

@dataclass(frozen=True)
class SubmissionMember:
    """One ensemble member: the folder name of its files and its checkpoint."""

    label: str
    checkpoint: Path


def _unique_labels(labels: Sequence[str]) -> list[str]:
    """Labels made unique and kept clear of the merged folders (`a`, `a` -> `a`, `a_2`)."""
    out: list[str] = []
    for label in labels:
        base = label if label != MERGED and not label.endswith(UNCERTAINTY_SUFFIX) else f"member_{label}"
        candidate, k = base, 2
        while candidate in out:
            candidate, k = f"{base}_{k}", k + 1
        out.append(candidate)
    return out


def members_from_names(names: Sequence[str], load_epochs: Sequence[int],
                       checkpoints_dir: str | os.PathLike = "./checkpoints",
                       checkpoints: Sequence[str | os.PathLike] = ()) -> list[SubmissionMember]:
    """Members from the original layout (`<dir>/<name>/net_epoch_<E>_<name>.pth`, labelled by name;
    a name given twice with other epochs becomes `<name>_epoch<E>`) and from checkpoint files
    (labelled by file stem). Missing files raise EMENetInputError."""
    paths: list[Path] = []
    labels: list[str] = []
    if names or load_epochs:
        if not names or not load_epochs:
            raise EMENetInputError("--names and --load_epochs go together")
        pairs = pair_names_and_epochs(names, load_epochs)
        paths = [checkpoint_path(checkpoints_dir, n, e) for n, e in pairs]
        repeated = {n for n in names if list(names).count(n) > 1}
        labels = [f"{n}_epoch{e}" if n in repeated else n for n, e in pairs]
    paths += [Path(p) for p in checkpoints]
    labels += [Path(p).stem for p in checkpoints]
    if not paths:
        raise EMENetInputError("no model given: pass --names NAME --load_epochs E, or --checkpoint PATH")
    for path in paths:
        if not path.is_file():
            raise EMENetInputError(f"{path}: checkpoint not found")
    return [SubmissionMember(label, path) for label, path in zip(_unique_labels(labels), paths)]


# ------------------------------------------------------------------------------- merging

def merge_member_predictions(members: Sequence[FramePredictions]) -> FramePredictions:
    """The ensemble of the members' predictions of the same frames (the original's merge).

    AU = mean probability > 0.5; EXPR = argmax of the mean softmax; VA = mean of the members'
    expectations (= the expectation of the mean bin distribution). Uncertainty: total
    (entropy of the mean), aleatoric (mean entropy) and epistemic (their difference).
    """
    if not members:
        raise ValueError("merge_member_predictions: no member predictions")
    if len(members) == 1:
        return members[0]
    tasks = members[0].tasks
    probs = {t: torch.from_numpy(np.stack([getattr(m, _PROB_FIELDS[t]) for m in members]).astype(np.float64))
             for t in tasks}  # task -> (M, N, ...)
    mean = {t: p.mean(dim=0) for t, p in probs.items()}
    f32 = lambda x: x.numpy().astype(np.float32)  # noqa: E731
    uncertainty = {t: TaskUncertainty(**{k: f32(v) for k, v in u.items()})
                   for t, u in ensemble_task_uncertainty(probs).items()}
    kwargs: dict[str, Any] = {}
    if "AU" in mean:
        kwargs.update(au_probs=f32(mean["AU"]), au=decode("AU", mean["AU"]).numpy().astype(np.int8))
    if "EXPR" in mean:
        kwargs.update(expr_probs=f32(mean["EXPR"]), expr=decode("EXPR", mean["EXPR"]).numpy().astype(np.int64))
    if "VA" in mean:
        va = np.stack([m.va for m in members]).astype(np.float64).mean(axis=0)  # (N, 2) mean expectation
        kwargs.update(va_probs=f32(mean["VA"]), va=va.astype(np.float32))
    return FramePredictions(num_models=sum(m.num_models for m in members), uncertainty=uncertainty, **kwargs)


# ------------------------------------------------------------------------------ formats

def frame_rows(video: TestVideo) -> np.ndarray:
    """(num_frames,) index into the crop predictions for every video frame: its own crop's,
    else the nearest earlier crop's, the first crop's before the first crop."""
    return fill_index(video.has_crop())


def submission_text(task: str, preds: FramePredictions, rows: np.ndarray) -> str:
    """One challenge file: the task's header, then row `rows[k]` of `preds` for frame k + 1."""
    if task not in SUBMISSION_TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks are {list(SUBMISSION_TASKS)}")
    spec = task_spec(task, len(preds.expr_classes))  # 8 expression classes: header `...,Other`
    values = preds.task_arrays(task)[0][rows].astype(spec.value_dtype)
    if spec.value_format is None:
        text = pd.DataFrame(values).to_csv(header=False, index=False)
    else:  # regression values: the challenge's range [-1, 1]
        text = pd.DataFrame(np.clip(values, -1.0, 1.0)).to_csv(header=False, index=False,
                                                               float_format=spec.value_format)
    return spec.header + "\n" + text


def uncertainty_table(task: str, preds: FramePredictions, rows: np.ndarray, crop_frames: np.ndarray,
                      has_crop: np.ndarray) -> pd.DataFrame:
    """The `_with_uncertainty` table of one task (columns in the module docstring)."""
    cols: dict[str, Any] = {"frame": np.arange(1, len(rows) + 1), "has_crop": has_crop.astype(np.int8),
                            "source_frame": crop_frames[rows]}
    u = preds.uncertainty[task]
    kinds = [("uncertainty", u.total)] + ([("aleatoric", u.aleatoric), ("epistemic", u.epistemic)]
                                          if u.epistemic is not None else [])
    spec = task_spec(task, len(preds.expr_classes))
    units = spec.unit_columns()  # AU names, `expression`, or valence and arousal

    def per_unit(values: np.ndarray) -> np.ndarray:
        return values[rows].reshape(len(rows), -1).T  # (units, n): a multiclass prediction is one unit

    predictions, probs = preds.task_arrays(task)
    cols.update(zip(units, per_unit(predictions)))
    if len(spec.prob_shape) == 1:  # one probability per unit or class (not VA's bins)
        cols.update({f"{name}_prob": probs[rows, k] for k, name in enumerate(spec.names)})
    for suffix, values in kinds:
        cols.update({f"{name}_{suffix}": v for name, v in zip(units, per_unit(values))})
    return pd.DataFrame(cols)


def submission_file(save_dir: str | os.PathLike, folder: str, task: str, name: str) -> Path:
    """`<save_dir>/<folder>/<TASK>/<name>.txt`; folder is a member label or `merged`."""
    return Path(save_dir) / folder / TASK_DIRS[task] / f"{name}.txt"


def uncertainty_file(save_dir: str | os.PathLike, folder: str, task: str, name: str) -> Path:
    """`<save_dir>/<folder>_with_uncertainty/<TASK>/<name>.csv`."""
    return Path(save_dir) / f"{folder}{UNCERTAINTY_SUFFIX}" / TASK_DIRS[task] / f"{name}.csv"


def _output_files(save_dir: Path, folders: Sequence[str], video: TestVideo) -> list[Path]:
    return [f(save_dir, folder, task, video.name) for folder in folders for task in video.tasks
            for f in (submission_file, uncertainty_file)]


# --------------------------------------------------------------------------- predicting

def _read_crops(paths: Sequence[Path], pool: ThreadPoolExecutor) -> np.ndarray:
    return np.stack(list(pool.map(lambda p: read_rgb(p, INPUT_SIZE), paths)))  # (n, 112, 112, 3) RGB


def iter_crop_chunks(paths: Sequence[Path], chunk_size: int, num_workers: int = 2) -> Iterator[np.ndarray]:
    """(n, 112, 112, 3) uint8 RGB chunks of the crops, in order; the next chunk is read
    (by `num_workers` threads) while the caller works on the current one."""
    starts = list(range(0, len(paths), chunk_size))
    with ThreadPoolExecutor(max(1, num_workers)) as readers, ThreadPoolExecutor(1) as ahead:
        pending: Future | None = None
        for k, start in enumerate(starts):
            current = pending or ahead.submit(_read_crops, paths[start:start + chunk_size], readers)
            nxt = starts[k + 1] if k + 1 < len(starts) else None
            pending = None if nxt is None else ahead.submit(_read_crops, paths[nxt:nxt + chunk_size], readers)
            yield current.result()


def predict_test_video(predictors: Sequence[Predictor], video: TestVideo, chunk_size: int = 256,
                       num_workers: int = 2, on_chunk: Callable[[int], None] | None = None) -> list[FramePredictions]:
    """Each predictor's predictions for the crops of `video` in frame order (one row per crop),
    the crops fed as one sequence per predictor, its hidden state carried across chunks."""
    states = [None] * len(predictors)
    parts: list[list[FramePredictions]] = [[] for _ in predictors]
    # audio-visual members hear the video's track: one window per cropped frame (crop k+1 is frame k)
    sound = {p.audio_window: None for p in predictors if p.audio_window}
    if sound:
        track = read_audio_track(video.video_path, AUDIO_SAMPLE_RATE)
        timings = {p.audio_timing for p in predictors if p.audio_window}
        if len(timings) > 1:
            raise EMENetInputError(f"the audio-visual members must share one audio timing, got {sorted(timings)}")
        timing = timings.pop()
    done = 0
    for crops in iter_crop_chunks(video.crop_paths(), chunk_size, num_workers):
        frames = video.crop_frames[done:done + len(crops)] - 1
        for width in sound:
            sound[width] = frame_windows(track.samples, track.fps, frames, track.sample_rate,
                                         width / track.sample_rate, timing)
        for i, predictor in enumerate(predictors):
            audio = sound[predictor.audio_window] if predictor.audio_window else None
            preds, states[i] = predictor.predict_frames(crops, states[i], audio=audio)
            parts[i].append(preds)
        done += len(crops)
        if on_chunk is not None:
            on_chunk(len(crops))
    return [FramePredictions.concatenate(p) for p in parts]


def write_video_files(save_dir: str | os.PathLike, folder: str, video: TestVideo, preds: FramePredictions,
                      conformal: ConformalSettings | None = None) -> None:
    """The challenge file and the uncertainty CSV of each of `video`'s tasks, for one folder; with
    `conformal`, the CSV also gets the task's conformal columns (emenet.conformal.apply)."""
    rows, has_crop = frame_rows(video), video.has_crop()
    extra = None if conformal is None else prediction_columns(conformal, preds).iloc[rows].reset_index(drop=True)
    for task in video.tasks:
        with atomic_path(submission_file(save_dir, folder, task, video.name)) as tmp:
            tmp.write_text(submission_text(task, preds, rows))
        table = uncertainty_table(task, preds, rows, video.crop_frames, has_crop)
        if extra is not None:
            table = pd.concat([table, task_columns(extra, task)], axis=1)
        with atomic_path(uncertainty_file(save_dir, folder, task, video.name)) as tmp:
            table.to_csv(tmp, index=False, float_format=CSV_FLOAT_FORMAT)


# ------------------------------------------------------------------------------ the run

@dataclass
class SubmissionResult:
    save_dir: Path
    members: list[str]
    done: list[str] = field(default_factory=list)      # names predicted in this run
    skipped: list[str] = field(default_factory=list)   # names already complete
    frames: int = 0                                    # crops predicted in this run (per member)
    seconds: float = 0.0

    @property
    def merged_dir(self) -> Path:
        return self.save_dir / MERGED

    @property
    def crops_per_second(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def _check_manifest(save_dir: Path, manifest: dict[str, Any], overwrite: bool) -> None:
    path = save_dir / MANIFEST
    if overwrite or not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError):
        raise EMENetInputError(f"{path}: unreadable; pass --overwrite to redo the submission") from None
    if old.get("members") != manifest["members"]:
        raise EMENetInputError(f"{save_dir} holds a submission of other members "
                               f"({', '.join(m['label'] for m in old.get('members', []))}); pass --overwrite to "
                               f"replace it, or choose another --save_dir")


def write_submission(members: Sequence[SubmissionMember], test_set: TestSet | str | os.PathLike,
                     save_dir: str | os.PathLike, overwrite: bool = False, device: str = "cpu", batch_size: int = 64,
                     chunk_size: int = 256, num_workers: int = 2, progress: bool = True,
                     coverage: float | None = None, conformal_file: str | os.PathLike | None = None,
                     audio_timing: str | None = None, backend: str = "auto") -> SubmissionResult:
    """Predict every test name with every member and write the files in the module docstring.

    `test_set` is a TestSet or a file written by Training/create_test_set_file.py. Only the
    tasks each name is listed for are written. Names whose files all exist are skipped
    unless `overwrite`. Crops are read `chunk_size` at a time by `num_workers` threads.
    `coverage` / `conformal_file` add the ensemble's conformal sets to the merged CSVs.
    `audio_timing` overrides the audio-visual members' window timing (emenet.audio_timing).
    `backend` runs the members' backbones (emenet.fast.runners; `auto`: onnx on the CPU).
    """
    start_time = time.perf_counter()
    if not members:
        raise EMENetInputError("no ensemble member given")
    if chunk_size < 1:
        raise EMENetInputError(f"--chunk_size must be at least 1, got {chunk_size}")
    test_set_file = None
    if not isinstance(test_set, TestSet):
        test_set_file = str(Path(test_set).resolve())
        test_set = read_test_set(test_set)
    save_dir = Path(save_dir)
    conformal = conformal_from_args([m.checkpoint for m in members], coverage, conformal_file)
    labels = [m.label for m in members]
    manifest = {"format": FORMAT, "members": [{"label": m.label, "checkpoint": str(Path(m.checkpoint).resolve())}
                                              for m in members],
                "merge": "AU: mean probability > 0.5; EXPR: argmax of the mean softmax; VA: mean expectation",
                "test_set_file": test_set_file}
    _check_manifest(save_dir, manifest, overwrite)

    folders = [*labels, MERGED]
    todo = [v for v in test_set.values()
            if overwrite or not all(p.is_file() for p in _output_files(save_dir, folders, v))]
    result = SubmissionResult(save_dir, labels, skipped=[n for n in test_set if n not in {v.name for v in todo}])
    if result.skipped:
        log.info("%d of %d test names already done in %s; skipping them", len(result.skipped), len(test_set), save_dir)
    write_json(save_dir / MANIFEST, manifest)
    if not todo:
        result.seconds = time.perf_counter() - start_time
        return result

    predictors = [Predictor([m.checkpoint], device=device, batch_size=batch_size, backend=backend,
                            audio_timing=audio_timing) for m in members]
    tasks = predictors[0].tasks
    for member, predictor in zip(members[1:], predictors[1:]):
        if predictor.tasks != tasks:
            raise EMENetInputError(f"{member.checkpoint} predicts {list(predictor.tasks)} but "
                                   f"{members[0].checkpoint} predicts {list(tasks)}; "
                                   f"every member must have the same tasks")
    needed = sorted({t for v in todo for t in v.tasks} - set(tasks))
    if needed:
        raise EMENetInputError(f"the test set asks for {needed} but the members predict only {list(tasks)}")

    with tqdm(total=sum(v.num_crops for v in todo), unit="frame", desc="test set", disable=not progress) as bar:
        for video in todo:
            bar.set_postfix_str(video.name, refresh=False)
            member_preds = predict_test_video(predictors, video, chunk_size, num_workers, bar.update)
            for label, preds in zip(labels, member_preds):
                write_video_files(save_dir, label, video, preds)
            write_video_files(save_dir, MERGED, video, merge_member_predictions(member_preds), conformal)
            result.done.append(video.name)
            result.frames += video.num_crops
    result.seconds = time.perf_counter() - start_time
    log.info("%d test names predicted by %d member(s) in %.1f s (%.0f crops/s per member) -> %s", len(result.done),
             len(members), result.seconds, result.crops_per_second, save_dir)
    return result


# ------------------------------------------------------------------------------ scoring

def read_submission_file(path: str | os.PathLike, task: str, num_frames: int | None = None) -> np.ndarray:
    """One challenge file -> AU (N, 12) int, EXPR (N,) int, VA (N, 2) float; checks the header,
    the values (no unannotated markers: a submission predicts every frame) and the row count."""
    path = Path(path)
    if not path.is_file():
        raise EMENetInputError(f"{path}: submission file not found")
    values = read_annotation_file(path, task)  # header, row width and value ranges checked there
    marker = TASKS[task].missing_value
    bad = np.flatnonzero((values == marker).any(axis=1))
    if len(bad):
        raise EMENetInputError(f"{path}:{bad[0] + 2}: {marker:g} is no prediction; every frame needs one")
    if num_frames is not None and len(values) != num_frames:
        raise EMENetInputError(f"{path}: {len(values)} rows, the video has {num_frames} frames")
    return TASKS[task].frame_values(values).astype(TASKS[task].value_dtype)


def _ground_truth_file(ground_truth_dir: Path, task: str, name: str) -> Path:
    for folder in (TASKS[task].annotation_dir, TASK_DIRS[task]):
        path = ground_truth_dir / folder / f"{name}.txt"
        if path.is_file():
            return path
    raise EMENetInputError(f"no ground truth for {name} ({task}) under {ground_truth_dir} "
                           f"(looked in {TASKS[task].annotation_dir}/ and {TASK_DIRS[task]}/)")


def score_submission(submission_dir: str | os.PathLike, ground_truth_dir: str | os.PathLike,
                     test_set: TestSet | str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Challenge metrics of challenge-format files against ground truth in the same format.

    `submission_dir` holds `<AU|EXPR|VA>/<name>.txt` (e.g. `save_dir/merged`); `ground_truth_dir`
    holds `<AU_Set|EXPR_Set|VA_Set>/<name>.txt` (or `<AU|EXPR|VA>/`), unannotated rows -1 / -5.
    Every test name listed for a task is scored, frames of all names pooled, over the tasks the
    submission has a folder for. Returns task -> metrics (emenet.evaluation.metrics: AU `f1`, `accuracy`,
    `score`; EXPR the same; VA `ccc_valence`, `ccc_arousal`, `ccc_mean`, `score`).

    >>> gt = "data/synth/synthetic_ground_truth"
    >>> scores = score_submission("submission/merged", gt, "test_set.parquet")  # doctest: +SKIP
    >>> scores["EXPR"]["score"]  # doctest: +SKIP
    """
    from emenet.evaluation.metrics import challenge_scores  # scikit-learn: imported only when scoring

    submission_dir, ground_truth_dir = Path(submission_dir), Path(ground_truth_dir)
    if not isinstance(test_set, TestSet):
        test_set = read_test_set(test_set)
    if not submission_dir.is_dir():
        raise EMENetInputError(f"{submission_dir}: submission folder not found")
    predictions: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    expr_classes = {7}
    for task in SUBMISSION_TASKS:
        names = test_set.names(task)
        if not names or not (submission_dir / TASK_DIRS[task]).is_dir():
            continue
        preds, truth = [], []
        for name in names:
            num_frames = test_set[name].num_frames
            preds.append(read_submission_file(submission_dir / TASK_DIRS[task] / f"{name}.txt", task, num_frames))
            gt_path = _ground_truth_file(ground_truth_dir, task, name)
            gt, classes = read_annotation_file_with_classes(gt_path, task)
            expr_classes.add(classes or 7)
            if len(gt) != num_frames:
                raise EMENetInputError(f"{gt_path}: {len(gt)} rows, the video has {num_frames} frames")
            truth.append(TASKS[task].frame_values(gt).astype(TASKS[task].value_dtype))
        predictions[task], labels[task] = np.concatenate(preds), np.concatenate(truth)
    if not predictions:
        raise EMENetInputError(f"{submission_dir}: no AU/, EXPR/ or VA/ folder for the test set's tasks")
    scores = challenge_scores(predictions, labels, max(expr_classes))  # 8 when the ground truth has `Other`
    return {task: scores[task] for task in SUBMISSION_TASKS if task in scores}
