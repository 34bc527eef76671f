"""Iterative self-distillation end to end on synthetic data, through the shell script, on Ray."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from emenet.distill.parallel import run_jobs
from emenet.errors import EMENetInputError

REPO = Path(__file__).resolve().parents[1]


def _fail_on_odd(i: int) -> int:
    if i % 2:
        raise RuntimeError(f"member {i} crashed")
    return i * 10


def test_failed_jobs_are_reported_and_others_finish():
    outcomes = run_jobs(_fail_on_odd, [(f"m{i}", {"i": i}) for i in range(4)])
    assert [o.ok for o in outcomes] == [True, False, True, False]
    assert outcomes[2].value == 20 and "member 1 crashed" in outcomes[1].error


@pytest.mark.slow
def test_jobs_on_local_ray_match_in_process(require_extra):
    ray = require_extra("ray", "ray")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # test modules are not importable on workers
    try:
        outcomes = run_jobs(_fail_on_odd, [(f"m{i}", {"i": i}) for i in range(4)], ray_address="auto")
    finally:
        ray.shutdown()  # do not leave idle workers for the rest of the suite
    assert [o.ok for o in outcomes] == [True, False, True, False]
    assert [o.value for o in outcomes if o.ok] == [0, 20]
    assert "member 3 crashed" in outcomes[3].error


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from emenet.data.synth import generate_synthetic_dataset
    root = tmp_path_factory.mktemp("distill_data")
    generate_synthetic_dataset(root, num_videos=4, seed=11, min_frames=40, max_frames=60, two_person_videos=0,
                               num_test_videos=1, overwrite=True, progress=False)
    return root


@pytest.mark.slow
def test_rounds_through_the_shell_script(synth_root, tmp_path):
    args = ["bash", str(REPO / "Training" / "run_student_rounds.sh"), "--data_root", str(synth_root),
            "--members", "2", "--rounds", "1", "--checkpoints_dir", str(tmp_path / "ck"),
            "--loggings_dir", str(tmp_path / "logs"), "--annotations_dir", str(tmp_path / "ann"),
            "--nepochs", "1", "--max_steps_per_epoch", "2", "--seq_len", "4", "--batch_size", "1",
            "--val_seq_len", "32", "--num_workers", "0"]
    env = {**os.environ, "EMENET_BIN": str(Path(sys.executable).parent / "emenet")}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    # every stage left its artefacts
    for name in ("teacher_exp_0", "teacher_exp_1", "student_round_1_exp_0", "student_round_1_exp_1"):
        assert (tmp_path / "ck" / name / f"net_epoch_1_{name}.pth").is_file()
        assert (tmp_path / "ck" / name / "history.json").is_file()
    manifest = json.loads((tmp_path / "ann" / "round_0" / "manifest.json").read_text())
    assert manifest["complete"] and [m["name"] for m in manifest["members"]] == ["teacher_exp_0", "teacher_exp_1"]
    videos = pd.read_parquet(tmp_path / "ann" / "round_0" / "videos.parquet")
    frames = pd.read_parquet(tmp_path / "ann" / "round_0" / "frames" / f"{videos['name'][0]}.parquet")
    assert {"frame", "m0.AU.0", "m1.VA.39", "AU1", "valence"} <= set(frames.columns)
    table = pd.read_csv(tmp_path / "ann" / "summary.csv")
    assert list(table["method"]) == ["teacher_exp_0", "teacher_exp_1", "ensemble",
                                     "student_round_1_exp_0", "student_round_1_exp_1", "ensemble"]
    assert list(table["round"]) == [0, 0, 0, 1, 1, 1]
    for col in ("AU_score", "EXPR_score", "VA_ccc_valence", "total_score", "EXPR_ece", "EXPR_nll", "AU_ece"):
        assert table[col].notna().all(), col
    assert table.loc[table["method"] == "ensemble", "EXPR_epistemic_uncertainty"].ge(0).all()
    assert (tmp_path / "ann" / "summary.md").read_text().startswith("| round | method")
    for col in ("sel_total_EXPR_error_aurc", "sel_total_AU_error_eaurc", "sel_total_valence_abserr_at90"):
        assert table[col].notna().all(), col
    assert table.loc[table["method"] == "ensemble", "sel_epistemic_EXPR_error_eaurc"].ge(-1e-12).all()
    assert "Selective prediction" in (tmp_path / "ann" / "summary.md").read_text()
    assert "ensemble" in done.stdout
    # rerunning skips finished work: no checkpoint is rewritten
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "ck").rglob("net_epoch_*.pth")}
    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert before == {p: p.stat().st_mtime_ns for p in (tmp_path / "ck").rglob("net_epoch_*.pth")}


@pytest.mark.slow
def test_annotation_dir_of_another_ensemble_is_refused(synth_root, tmp_path):
    import emenet
    from emenet.distill.annotate import create_annotations
    from emenet.distill.members import members_from_names
    for i, name in enumerate(["a", "b"]):
        import torch
        torch.manual_seed(i)
        emenet.save_checkpoint(tmp_path / name / f"net_epoch_1_{name}.pth", emenet.create_model("emenet_v"), 1)
    create_annotations(members_from_names(["a"], [1], tmp_path), synth_root, tmp_path / "ann", progress=False)
    with pytest.raises(EMENetInputError, match="different ensemble"):
        create_annotations(members_from_names(["b"], [1], tmp_path), synth_root, tmp_path / "ann", progress=False)
    with pytest.raises(EMENetInputError, match="not found"):
        members_from_names(["a"], [7], tmp_path)
    with pytest.raises(EMENetInputError, match="--load_epochs has 3"):
        members_from_names(["a", "b"], [1, 1, 1], tmp_path)


def test_members_that_disagree_on_tasks_are_refused(tmp_path):
    import emenet
    from emenet.distill.members import load_members, members_from_names
    emenet.save_checkpoint(tmp_path / "a" / "net_epoch_1_a.pth", emenet.create_model("emenet_v"), 1)
    emenet.save_checkpoint(tmp_path / "b" / "net_epoch_1_b.pth", emenet.create_model("emenet_v", tasks=("EXPR", "AU")), 1)
    members = members_from_names(["a", "b"], [1], tmp_path)
    with pytest.raises(EMENetInputError, match=r"members disagree on tasks: a predicts \['EXPR', 'AU', 'VA'\], "
                                                r"b predicts \['EXPR', 'AU'\]"):
        load_members(members)


@pytest.mark.slow
def test_a_member_that_crashes_leaves_the_round_to_the_others(synth_root, tmp_path, monkeypatch, caplog):
    from emenet.distill import rounds
    from emenet.training.config import TrainConfig
    real_train = rounds.train_member

    def crash_member_1(config: dict, student: bool, threads: int | None = None) -> dict:
        if config["name"].endswith("_1"):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return real_train(config, student, threads)

    monkeypatch.setattr(rounds, "train_member", crash_member_1)
    base = TrainConfig(data_root=str(synth_root), checkpoints_dir=str(tmp_path / "ck"),
                       loggings_dir=str(tmp_path / "logs"), nepochs=1, max_steps_per_epoch=2, seq_len=4,
                       batch_size=1, val_seq_len=32, num_workers=0)
    plan = rounds.DistillPlan(members=2, rounds=0, annotations_dir=str(tmp_path / "ann"))
    with caplog.at_level("WARNING"):
        table = rounds.run_rounds(plan, base, progress=False)
    assert list(table["method"]) == ["teacher_exp_0", "ensemble"]
    assert "round 0 goes on with 1 of 2 members: teacher_exp_1" in caplog.text
    failures = json.loads((tmp_path / "ann" / "failures.json").read_text())
    assert [(f["round"], f["member"]) for f in failures] == [(0, "teacher_exp_1")]
    assert "illegal memory access" in failures[0]["error"]
    assert (tmp_path / "ck" / "teacher_exp_0" / "net_epoch_1_teacher_exp_0.pth").is_file()
    # when every member fails the round stops with one line, and the finished member's work stays
    monkeypatch.setattr(rounds, "train_member", lambda config, student, threads=None: 1 / 0)
    with pytest.raises(EMENetInputError, match="round 0: every member failed"):
        rounds.run_rounds(plan, base, progress=False)
    assert (tmp_path / "ck" / "teacher_exp_0" / "net_epoch_1_teacher_exp_0.pth").is_file()
    assert (tmp_path / "ann" / "summary.csv").is_file()
