"""Ensemble validation and OOD detection end to end on synthetic data; their scripts' one-line errors."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import emenet
from emenet.data.clips import LabeledVideo
from emenet.evaluation import ood as O
from emenet.distill.members import members_from_names
from emenet.evaluation.validate_ensemble import (ENSEMBLE, MC_DROPOUT, TEMPERATURE_SCALED, split_videos,
                                              validate_ensemble)
from emenet.errors import EMENetInputError

REPO = Path(__file__).resolve().parents[1]
CHUNK = 16  # CPU: smaller chunks run the backbone faster per frame


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "Training" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from emenet.data.synth import generate_synthetic_dataset
    root = tmp_path_factory.mktemp("synth")
    generate_synthetic_dataset(root, num_videos=6, seed=3, min_frames=60, max_frames=90, two_person_videos=1,
                               num_test_videos=1, overwrite=True, progress=False)
    return root


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Two random-weight members `m0`, `m1` (epoch 3), and `expr_au` predicting only EXPR and AU."""
    ckpts = tmp_path_factory.mktemp("checkpoints")
    for seed, name in enumerate(("m0", "m1")):
        torch.manual_seed(seed)
        emenet.save_checkpoint(ckpts / name / f"net_epoch_3_{name}.pth", emenet.create_model("emenet_v"), 3)
    torch.manual_seed(5)
    emenet.save_checkpoint(ckpts / "expr_au" / "net_epoch_3_expr_au.pth",
                           emenet.create_model("emenet_v", tasks=("EXPR", "AU")), 3)
    return ckpts


@pytest.fixture(scope="module")
def validation(synth_root, checkpoints, tmp_path_factory):
    out = tmp_path_factory.mktemp("ensemble_val")
    members = members_from_names(["m0", "m1"], [3], checkpoints)
    result = validate_ensemble(members, synth_root, out, mc_dropout_passes=3, chunk=CHUNK, progress=False)
    return out, result


@pytest.mark.slow
def test_validate_ensemble_writes_every_artefact(validation):
    out, result = validation
    methods = ["member_0", "member_1", ENSEMBLE, TEMPERATURE_SCALED, MC_DROPOUT]
    table = pd.read_csv(out / "metrics.csv")
    assert table["method"].tolist() == methods
    assert table["models"].tolist() == ["m0@3", "m1@3", "m0@3+m1@3", "m0@3", "m0@3"]
    for prefix in ("", "eval_"):
        for task in ("EXPR", "AU", "VA"):
            for score in ("ece", "nll", "brier"):
                assert f"{prefix}{task}_{score}" in table.columns
            for measure in ("total", "aleatoric", "epistemic"):
                assert f"{prefix}unc_{task}_{measure}" in table.columns
        for column in ("AU_score", "EXPR_score", "VA_ccc_valence", "VA_ccc_arousal", "total_score", "AU_ece_pooled",
                       "AU_ece_AU12", "VA_valence_ece", "VA_arousal_nll"):
            assert prefix + column in table.columns
    rows = table.set_index("method")
    # every method is scored on the evaluation half; temperature scaling not on the whole split
    assert rows["eval_EXPR_ece"].notna().all() and rows["eval_total_score"].notna().all()
    assert rows.loc[TEMPERATURE_SCALED, ["EXPR_ece", "AU_score", "unc_VA_total"]].isna().all()
    assert rows.drop(TEMPERATURE_SCALED)["EXPR_nll"].notna().all()
    eces = rows.filter(regex=r"_ece(_|$)").to_numpy(dtype=float)
    assert np.nanmin(eces) >= 0 and np.nanmax(eces) <= 1
    # uncertainty: one model has no epistemic part; the ensemble and MC dropout do; total = aleatoric + epistemic
    for method in ("member_0", "member_1", TEMPERATURE_SCALED):
        assert rows.loc[method, "eval_unc_EXPR_epistemic"] == pytest.approx(0.0, abs=1e-6)
    for method in (ENSEMBLE, MC_DROPOUT):
        assert rows.loc[method, "unc_AU_epistemic"] > 0
        assert rows.loc[method, "unc_VA_total"] == pytest.approx(
            rows.loc[method, "unc_VA_aleatoric"] + rows.loc[method, "unc_VA_epistemic"], abs=1e-6)
    # temperature scaling keeps AU and EXPR decisions: same challenge scores as member 0 on the evaluation half
    for column in ("eval_AU_score", "eval_EXPR_score"):
        assert rows.loc[TEMPERATURE_SCALED, column] == pytest.approx(rows.loc["member_0", column])

    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["calibration_videos"]).isdisjoint(summary["evaluation_videos"])
    assert sorted(summary["calibration_videos"] + summary["evaluation_videos"]) == sorted(summary["videos"])
    assert set(summary["temperatures"]) == {"EXPR", "AU", "VA"} and len(summary["temperatures"]["VA"]) == 2
    assert summary["temperatures"] == result.temperatures
    markdown, selective_md = (out / "metrics.md").read_text().split("## Selective prediction")
    for method in methods:
        assert markdown.count(f"| {method} |") == 5  # one line in each of the five tables
    assert selective_md.count("| ensemble | epistemic |") == 3  # one per task
    for method in methods:
        png = out / "reliability" / f"{method}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for task in ("EXPR", "AU", "VA"):
        assert (out / "selective" / f"{task}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == sorted(
        ["metrics.csv", "metrics.md", "summary.json", "selective.csv", "selective_curves.csv",
         *(f"{m}.png" for m in methods), "EXPR.png", "AU.png", "VA.png"])  # no temporary files left


@pytest.mark.slow
def test_selective_prediction_table_and_curves(validation):
    out, _ = validation
    metrics = pd.read_csv(out / "metrics.csv").set_index("method")
    table = pd.read_csv(out / "selective.csv")
    assert [tuple(r) for r in table[["method", "score"]].to_numpy()] == [
        ("member_0", "total"), ("member_1", "total"), (ENSEMBLE, "total"), (ENSEMBLE, "aleatoric"),
        (ENSEMBLE, "epistemic"), (TEMPERATURE_SCALED, "total"), (MC_DROPOUT, "total"), (MC_DROPOUT, "aleatoric"),
        (MC_DROPOUT, "epistemic")]
    for prefix in ("EXPR_error", "AU_error", "valence_abserr", "arousal_abserr"):
        assert (table[f"{prefix}_eaurc"] >= -1e-12).all() and (table[f"{prefix}_aurc"] >= table[f"{prefix}_eaurc"]).all()
    curves = pd.read_csv(out / "selective_curves.csv")
    full = curves[curves["coverage"] == 1.0].set_index(["score", "curve"])["risk"]
    for method in ("member_0", ENSEMBLE, TEMPERATURE_SCALED):
        # at full coverage every frame is kept: the error rate is one minus the challenge accuracy
        assert full[(f"{method} total", "EXPR error")] == pytest.approx(1 - metrics.loc[method, "eval_EXPR_accuracy"])


@pytest.mark.slow
def test_member_scores_match_the_trainers_validation(validation, synth_root, checkpoints):
    from emenet.data.affwild2 import load_affwild2_index
    from emenet.data.labeled import labeled_videos
    from emenet.training.evaluate import evaluate_videos
    out, result = validation
    videos = [v for v in labeled_videos(load_affwild2_index(synth_root), "Validation_Set", ("EXPR", "AU", "VA"))
              if v.name in result.evaluation_videos]
    model = emenet.load_checkpoint(checkpoints / "m1" / "net_epoch_3_m1.pth")
    expected = evaluate_videos(model, videos, chunk=CHUNK, progress=False)
    row = result.table.set_index("method").loc["member_1"]
    for key, value in expected.items():
        assert row[f"eval_{key}"] == pytest.approx(value, abs=1e-6), key


def test_existing_outputs_are_not_replaced(validation, synth_root, checkpoints):
    out, _ = validation
    members = members_from_names(["m0", "m1"], [3], checkpoints)
    before = (out / "metrics.csv").read_bytes()
    with pytest.raises(EMENetInputError, match="already exists.*--overwrite"):
        validate_ensemble(members, synth_root, out, progress=False)
    assert (out / "metrics.csv").read_bytes() == before


def test_split_videos_keeps_source_videos_together_and_is_seeded():
    def video(name, tasks):
        n = 3
        return LabeledVideo(name, Path("."), np.arange(1, n + 1), {t: np.zeros((n, 1)) for t in tasks},
                            {t: np.ones((n, 1), bool) for t in tasks})
    videos = [video("a", "E"), video("b", "E"), video("c_left", "A"), video("c_right", "A"), video("d", "A"),
              video("e", "EA")]
    groups = {"c_left": "c", "c_right": "c"}
    calibration, evaluation = split_videos(videos, 0.5, seed=0, groups=groups)
    assert sorted(calibration + evaluation) == list(range(6)) and calibration and evaluation
    assert ({2, 3} <= set(calibration)) or ({2, 3} <= set(evaluation))
    assert split_videos(videos, 0.5, seed=0, groups=groups) == (calibration, evaluation)
    assert len({tuple(split_videos(videos, 0.5, seed=s, groups=groups)[0]) for s in range(8)}) > 1
    # each half gets one of the two "E"-only videos and one of the two "A"-only units
    for half in (calibration, evaluation):
        assert len({0, 1} & set(half)) == 1
    with pytest.raises(EMENetInputError, match="at least 2 validation videos"):
        split_videos(videos[2:4], 0.5, seed=0, groups=groups)
    with pytest.raises(EMENetInputError, match="strictly between 0 and 1"):
        split_videos(videos, 1.0, seed=0)


# --- OOD ---------------------------------------------------------------------------------------

def test_ood_clip_generators():
    rng = np.random.default_rng(0)
    for kind in O.NON_FACE_KINDS:
        clip = O.make_non_face_clip(kind, rng, clip_len=5, size=48)
        assert clip.shape == (5, 3, 48, 48) and clip.dtype == np.uint8
        assert clip.std() > 0
    assert not np.array_equal(*O.make_non_face_clip("noise", rng, 2, 16))  # new noise every frame
    face = rng.integers(0, 256, size=(3, 3, 40, 40), dtype=np.uint8)
    for kind in O.CORRUPTION_KINDS:
        corrupted = O.corrupt_clip(kind, face, np.random.default_rng(1))
        assert corrupted.shape == face.shape and corrupted.dtype == np.uint8
        assert not np.array_equal(corrupted, face)
    shuffled = O.corrupt_clip("face_shuffle", face, rng)
    assert np.array_equal(np.sort(shuffled.reshape(3, 3, -1)), np.sort(face.reshape(3, 3, -1)))
    flat = np.zeros((2, 3, 40, 40), np.uint8)
    occluded = O.corrupt_clip("face_occlusion", flat + 1, np.random.default_rng(2))
    covered = (occluded != 1).any(axis=1)
    assert covered[0].mean() >= 0.3 and np.array_equal(covered[0], covered[1])  # static occluder
    with pytest.raises(EMENetInputError, match="unknown OOD kind"):
        O.family_of("fog")


@pytest.mark.slow
def test_ood_auroc_end_to_end(synth_root, checkpoints, tmp_path):
    members = members_from_names(["m0", "m1"], [3], checkpoints)
    result = O.evaluate_ood(members, synth_root, tmp_path, clip_len=4, clips_per_video=2, clips_per_kind=1,
                            batch_size=4, progress=False)
    for name in O.OUTPUT_FILES:
        assert (tmp_path / name).is_file()
    table = pd.read_csv(tmp_path / "ood_auroc.csv")
    assert table["ood_set"].tolist() == [*O.OOD_KINDS, "non_face", "corrupted_face", "all_ood"]
    assert (table["num_id"] == 4).all() and table.set_index("ood_set").loc["all_ood", "num_ood"] == len(O.OOD_KINDS)
    auroc = table.filter(like="_auroc").to_numpy()
    assert auroc.shape[1] == 4 * 3 and ((auroc >= 0) & (auroc <= 1)).all()
    clips = pd.read_csv(tmp_path / "ood_clips.csv")
    assert len(clips) == 4 + len(O.OOD_KINDS) and (clips["EXPR_epistemic"] >= -1e-6).all()
    assert clips.loc[clips["set"] == "face_blur", "video"].iloc[0] in set(clips.loc[clips["set"] == O.ID_SET, "video"])
    assert result.auroc.equals(table) or np.allclose(result.auroc.filter(like="_auroc"), auroc)
    assert "## AUROC of epistemic uncertainty" in (tmp_path / "ood_auroc.md").read_text()


# --- the scripts' one-line errors --------------------------------------------------------------

def _one_line_error(capsys, main, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_scripts_report_one_line_errors(capsys, synth_root, checkpoints, tmp_path):
    validate_main = _load_script("validate_ensemble").main
    ood_main = _load_script("validate_ensemble_OOD").main
    common = ["--data_root", str(synth_root), "--checkpoints_dir", str(checkpoints), "--no_progress"]
    err = _one_line_error(capsys, validate_main, [*common, "--names", "m0", "m1", "--load_epochs", "3", "4",
                                                  "--out", str(tmp_path / "a")])
    assert "member m1 epoch 4 not found" in err
    err = _one_line_error(capsys, validate_main, [*common, "--names", "m0", "expr_au", "--load_epochs", "3",
                                                  "--out", str(tmp_path / "b")])
    assert "members disagree on tasks" in err and "expr_au" in err
    err = _one_line_error(capsys, ood_main, [*common, "--names", "m0", "--load_epochs", "3",
                                             "--out", str(tmp_path / "c")])
    assert "at least 2 members" in err
    err = _one_line_error(capsys, ood_main, [*common, "--names", "m0", "m1", "--load_epochs", "9",
                                             "--out", str(tmp_path / "d")])
    assert "epoch 9 not found" in err
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.slow
def test_round_summary_selective_columns_match_validate_ensembles_path(synth_root, checkpoints):
    """The distillation summary's selective columns (emenet.distill.round_metrics) equal the scores of
    validate_ensemble's code path on the whole validation split."""
    from emenet.data.affwild2 import load_affwild2_index
    from emenet.data.labeled import labeled_videos
    from emenet.distill.round_metrics import ensemble_validation_scores
    from emenet.evaluation.selective_report import selective_rows
    from emenet.evaluation.validate_ensemble import MethodOutputs, score_method_frames, stream_members_and_mc_dropout
    members = members_from_names(["m0", "m1"], [3], checkpoints)
    rows = {r["method"]: r for r in ensemble_validation_scores(members, synth_root, chunk=CHUNK, progress=False)}
    models = [emenet.load_checkpoint(m.checkpoint) for m in members]
    tasks = ("EXPR", "AU", "VA")
    videos = labeled_videos(load_affwild2_index(synth_root), "Validation_Set", tasks)
    logits = [z for _, z, _ in stream_members_and_mc_dropout(models, videos, tasks, 0, chunk=CHUNK, progress=False)]
    for method, outputs, scores in (("m0", [MethodOutputs.from_logits([z[0]]) for z in logits], ("total",)),
                                    ("ensemble", [MethodOutputs.from_logits(z) for z in logits],
                                     ("total", "aleatoric", "epistemic"))):
        _, probs, labels, unc = score_method_frames(videos, outputs, range(len(videos)), tasks)
        for expected in selective_rows(method, probs, labels, unc, scores)[0]:
            for key in ("EXPR_error_aurc", "AU_error_eaurc", "valence_abserr_at80", "arousal_ccc_at50", "AU_f1_at90"):
                assert rows[method][f"sel_{expected['score']}_{key}"] == pytest.approx(expected[key], abs=1e-5), key
    assert "sel_aleatoric_EXPR_error_aurc" not in rows["m0"]
