"""Iterative self-distillation from the shell: teachers, then rounds of students.

Round 0 trains `members` teachers (`teacher_exp_<i>`, seed base + i); the ensemble of their best
epochs (by validation score) annotates every frame; round r trains `members` students
(`student_round_<r>_exp_<i>`) on the previous round's annotation, and so on. Work already done
is skipped (runs resume, annotation directories fill in), a member that fails is reported and
the round goes on with the others, and the run ends with a table of every member and the
ensemble per round.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from emenet.distill.annotate import annotation_names, create_annotations
from emenet.distill.members import Member
from emenet.distill.parallel import run_jobs
from emenet.distill.round_metrics import ensemble_validation_scores
from emenet.distill.selection import keep_best
from emenet.errors import EMENetInputError
from emenet.io_utils import atomic_path, check_no_file_in_the_way, write_json
from emenet.run_layout import checkpoint_path
from emenet.reporting import markdown_table
from emenet.training.config import TrainConfig

log = logging.getLogger(__name__)

SUMMARY_COLUMNS = ("round", "method", "epoch", "AU_score", "EXPR_score", "VA_ccc_valence", "VA_ccc_arousal",
                   "total_score", "kept")


@dataclass(frozen=True)
class DistillPlan:
    members: int = 5
    rounds: int = 3
    annotations_dir: str = "./annotations"
    ray: str | None = None
    shards: int = 2  # annotation shards per round when running on Ray
    keep: int | None = None  # keep the K best members by validation total score (the original's selection)

    def __post_init__(self) -> None:
        if self.members < 1 or self.rounds < 0:
            raise EMENetInputError(f"--members must be >= 1 and --rounds >= 0, got {self.members} and {self.rounds}")
        if self.keep is not None and not 1 <= self.keep <= self.members:
            raise EMENetInputError(f"--keep must be between 1 and --members ({self.members}), got {self.keep}")
        if self.shards < 1:
            raise EMENetInputError(f"--shards must be at least 1, got {self.shards}")


def member_name(round_: int, i: int) -> str:
    """The original's run names."""
    return f"teacher_exp_{i}" if round_ == 0 else f"student_round_{round_}_exp_{i}"


def train_member(config: dict, student: bool, threads: int | None = None) -> dict:
    """Train (or finish) one member; a top-level function so Ray can ship it to a worker."""
    import torch

    from emenet.training.run import train_student, train_teacher
    if threads:
        torch.set_num_threads(threads)
    cfg = TrainConfig.from_dict(config)
    result = (train_student if student else train_teacher)(cfg, progress=False)
    return {"best_epoch": result.best_epoch, "best_score": result.best_score}


def annotate_shard(members: list[dict], data_root: str, out_dir: str, names: list[str], device: str,
                   cache_dir: str | None = None, audio_dir: str | None = None, annotations_dir: str | None = None,
                   crops_dirs: list[str] | None = None) -> int:
    """Annotate a shard of videos (for Ray); returns how many names it covered."""
    create_annotations([Member(m["name"], m["epoch"], Path(m["checkpoint"])) for m in members], data_root, out_dir,
                       device=device, names=names, finalize=False, progress=False, cache_dir=cache_dir,
                       audio_dir=audio_dir, annotations_dir=annotations_dir, crops_dirs=crops_dirs)
    return len(names)


def _annotate(plan: DistillPlan, members: list[Member], base: TrainConfig, out: Path, progress: bool) -> None:
    if plan.ray and plan.shards > 1:
        names = annotation_names(base.data_root, tuple(base.tasks), base.cache_dir, base.annotations_dir,
                                 base.crops_dir or None)
        shards = [names[i::plan.shards] for i in range(plan.shards)]
        spec = [{"name": m.name, "epoch": m.epoch, "checkpoint": str(m.checkpoint)} for m in members]
        outcomes = run_jobs(annotate_shard, [(f"annotation shard {i}", {"members": spec, "data_root": base.data_root,
                                                                          "out_dir": str(out), "names": s, "device": base.device,
                                                                          "cache_dir": base.cache_dir,
                                                                          "audio_dir": base.audio_dir,
                                                                          "annotations_dir": base.annotations_dir,
                                                                          "crops_dirs": base.crops_dir or None})
                                             for i, s in enumerate(shards) if s], plan.ray)
        failed = [o for o in outcomes if not o.ok]
        if failed:
            log.warning("%d annotation shards failed (%s); finishing them here", len(failed), failed[0].error)
    create_annotations(members, base.data_root, out, device=base.device, progress=progress, cache_dir=base.cache_dir,
                       audio_dir=base.audio_dir, annotations_dir=base.annotations_dir, crops_dirs=base.crops_dir or None)


def run_rounds(plan: DistillPlan, base: TrainConfig, progress: bool = True) -> pd.DataFrame:
    """Teachers, then `plan.rounds` rounds of students; returns (and writes) the summary table."""
    if not base.data_root:
        raise EMENetInputError("--data_root is required")
    ann_root = check_no_file_in_the_way(plan.annotations_dir)  # now, not after the teachers have trained
    rows: list[dict] = []
    failures: list[dict] = []
    annotation: Path | None = None
    for r in range(plan.rounds + 1):
        student = r > 0
        configs = [replace(base, name=member_name(r, i), seed=base.seed + i, load_epoch=-1, overwrite=False,
                           annotation=str(annotation) if student else None) for i in range(plan.members)]
        log.info("round %d: training %d %s", r, plan.members, "students" if student else "teachers")
        outcomes = run_jobs(train_member, [(c.name, {"config": c.to_dict(), "student": student}) for c in configs],
                            plan.ray)
        members, scores = [], []
        for cfg, out in zip(configs, outcomes):
            if out.ok:
                epoch = out.value["best_epoch"]
                members.append(Member(cfg.name, epoch, checkpoint_path(cfg.checkpoints_dir, cfg.name, epoch)))
                scores.append(out.value["best_score"])
            else:
                failures.append({"round": r, "member": cfg.name, "error": out.error})
        if not members:
            raise EMENetInputError(f"round {r}: every member failed (first: {failures[-1]['error']})")
        if len(members) < plan.members:
            log.warning("round %d goes on with %d of %d members: %s", r, len(members), plan.members,
                        ", ".join(f["member"] for f in failures if f["round"] == r))
        kept = keep_best(members, scores, plan.keep)
        for member, score in zip(members, scores):
            if member not in kept:  # dropped by --keep: its own best validation score only
                rows.append({"round": r, "method": member.name, "epoch": member.epoch, "total_score": score,
                             "kept": False})
        if len(kept) < len(members):
            log.info("round %d keeps %s (the %d best by validation total score)", r,
                     ", ".join(m.name for m in kept), len(kept))
        members = kept
        for row in ensemble_validation_scores(members, base.data_root, base.device, cache_dir=base.cache_dir,
                                              progress=progress, audio_dir=base.audio_dir,
                                              annotations_dir=base.annotations_dir, crops_dirs=base.crops_dir or None):
            rows.append({"round": r, **row, "kept": True})
        if r < plan.rounds:
            annotation = ann_root / f"round_{r}"
            _annotate(plan, members, base, annotation, progress)
    table = pd.DataFrame(rows)
    write_summary(table, failures, ann_root)
    return table


def write_summary(table: pd.DataFrame, failures: list[dict], out: Path) -> None:
    """summary.csv (every column), summary.md (the main ones) and failures.json."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "summary.csv") as tmp:
        table.to_csv(tmp, index=False)
    cols = [c for c in SUMMARY_COLUMNS if c in table.columns] + sorted(
        c for c in table.columns if c.endswith(("_ece", "_nll")) and not c.startswith("AU_AU"))
    selective = [c for c in table.columns if c.startswith("sel_total_") and c.endswith(("_aurc", "_eaurc"))]
    text = markdown_table(table[cols]) + "\n"
    if selective:  # selective prediction ranked by total uncertainty (summary.csv has the other scores)
        text += ("\nSelective prediction (frames ranked by total uncertainty; lower is better):\n\n"
                 + markdown_table(table[["round", "method", *selective]]) + "\n")
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text(text)
    write_json(out / "failures.json", failures)
