"""Conformal calibration end to end: `emenet conformal` on synthetic videos, the saved file, and
its sets on every prediction entry (Predictor, inference_one_image.py, emenet predict, the test set)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import emenet
from emenet.cli import main as emenet_main
from emenet.conformal.apply import ConformalSettings, probs_from_table
from emenet.conformal.calibration_file import ensemble_key, load_calibration
from emenet.conformal.regions import predict_regions
from emenet.errors import EMENetInputError
from emenet.cli import Script
from emenet.inference.predictor import Predictor
from emenet.tasks import AU_NAMES, EXPR_NAMES

run_inference_one_image = Script("image", "inference_one_image.py").main

REPO = Path(__file__).resolve().parents[1]
CROP = REPO / "example_image" / "astronaut_112.jpg"


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from emenet.data.synth import generate_synthetic_dataset
    root = tmp_path_factory.mktemp("synth")
    generate_synthetic_dataset(root, num_videos=6, seed=4, min_frames=30, max_frames=40, two_person_videos=1,
                               num_test_videos=1, overwrite=True, progress=False)
    return root


@pytest.fixture(scope="module")
def fitted(synth_root, tmp_path_factory):
    """Two random members under checkpoints/, calibrated at 80% and 90% by the CLI."""
    ckpts = tmp_path_factory.mktemp("checkpoints")
    for seed, name in enumerate(("m0", "m1")):
        torch.manual_seed(seed)
        emenet.save_checkpoint(ckpts / name / f"net_epoch_3_{name}.pth", emenet.create_model("emenet_v"), 3)
    argv = ["conformal", "--data_root", str(synth_root), "--names", "m0", "m1", "--load_epochs", "3",
            "--checkpoints_dir", str(ckpts), "--coverage", "0.8", "0.9", "--chunk", "16", "--no_progress"]
    assert emenet_main(argv) == 0
    paths = [ckpts / n / f"net_epoch_3_{n}.pth" for n in ("m0", "m1")]
    files = list(ckpts.glob("conformal_*.json"))
    assert len(files) == 1
    return {"root": ckpts, "paths": paths, "file": files[0], "argv": argv}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.slow
def test_saved_calibration_names_members_split_and_measurements(fitted, capsys):
    cal = load_calibration(fitted["file"])
    assert fitted["file"].name == f"conformal_{ensemble_key([_sha(p) for p in fitted['paths']])}.json"
    assert [m["file"] for m in cal.members] == ["net_epoch_3_m0.pth", "net_epoch_3_m1.pth"]
    assert cal.hashes == [_sha(p) for p in fitted["paths"]]
    split = cal.split
    assert split["unit"] == "source video" and split["calibration_videos"] and split["evaluation_videos"]
    assert set(split["calibration_videos"]).isdisjoint(split["evaluation_videos"])
    assert cal.coverages == [0.8, 0.9]
    for c in ("0.8", "0.9"):
        level = cal.levels[c]
        assert set(level["thresholds"]) == {"EXPR", "AU", "valence", "arousal"} and len(level["thresholds"]["AU"]) == 12
        for key in ("EXPR", "AU", "valence", "arousal"):
            assert 0 <= level["measured"][key]["coverage"] <= 1
    # a higher target never gives smaller sets
    assert cal.levels["0.9"]["thresholds"]["EXPR"] >= cal.levels["0.8"]["thresholds"]["EXPR"]
    # refused without --overwrite, one line
    capsys.readouterr()
    assert emenet_main(fitted["argv"]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "--overwrite" in err and "Traceback" not in err


@pytest.mark.slow
def test_predictor_adds_sets_that_follow_the_thresholds(fitted):
    predictor = Predictor(fitted["paths"], backend="eager", coverage=0.9)
    assert predictor.conformal.source == fitted["file"]
    crops = np.random.default_rng(0).integers(0, 255, (20, 112, 112, 3), dtype=np.uint8)
    preds, _ = predictor.predict_frames(crops)
    table = predictor.conformal_table(preds)
    for col in ["EXPR_set", "EXPR_set_size", *(f"{n}_set" for n in AU_NAMES), "valence_lo", "valence_hi",
                "arousal_lo", "arousal_hi", "abstain_EXPR", "abstain_AU", "abstain_VA"]:
        assert col in table.columns, col
    # the most likely expression is always in the set, first
    assert [s.split("|")[0] for s in table["EXPR_set"]] == list(table["expression_name"])
    assert (table["EXPR_set"].str.count(r"\|") + 1 == table["EXPR_set_size"]).all()
    assert (table["valence_lo"] <= table["valence_hi"]).all() and table["valence_lo"].ge(-1).all()
    assert (table["abstain_EXPR"] == (table["EXPR_set_size"] > 2)).all()
    # the columns are the thresholds of the file applied to the table's own probabilities
    cal = load_calibration(fitted["file"])
    regions = predict_regions(probs_from_table(table), cal.level(0.9)["thresholds"], 0.9, cal.method)
    np.testing.assert_array_equal(regions.expr.sum(1), table["EXPR_set_size"])
    np.testing.assert_allclose(regions.va_lo[:, 1], table["arousal_lo"])
    au_sets = np.where(regions.au_has0 & regions.au_has1, "0|1", np.where(regions.au_has1, "1",
                                                                        np.where(regions.au_has0, "0", "")))
    np.testing.assert_array_equal(au_sets, table[[f"{n}_set" for n in AU_NAMES]].fillna("").to_numpy(dtype=str))


@pytest.mark.slow
def test_wrong_checkpoints_or_coverage_are_one_line_errors(fitted, tmp_path):
    with pytest.raises(EMENetInputError, match="no conformal calibration conformal_.*emenet conformal"):
        Predictor(fitted["paths"][:1], backend="eager", coverage=0.9)
    with pytest.raises(EMENetInputError, match="calibrated for other checkpoints"):
        Predictor(fitted["paths"][:1], backend="eager", conformal_file=fitted["file"])
    with pytest.raises(EMENetInputError, match="no conformal calibration for coverage 0.95; this file has 0.8, 0.9"):
        ConformalSettings.for_checkpoints(fitted["paths"], 0.95)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(EMENetInputError, match="bad.json: cannot read the conformal calibration"):
        ConformalSettings.for_checkpoints(fitted["paths"], 0.9, bad)


@pytest.mark.slow
def test_image_entry_prints_and_saves_the_sets(fitted, tmp_path, capsys):
    argv = ["--checkpoint", *map(str, fitted["paths"]), "--image", str(CROP), "--output_dir", str(tmp_path / "o"),
            "--coverage", "0.9", "--backend", "eager"]
    assert run_inference_one_image(argv) == 0
    out = capsys.readouterr().out
    assert "conformal sets at 90% coverage" in out and "expression in {" in out
    data = json.loads(next((tmp_path / "o").glob("*.json")).read_text())
    assert data["conformal"]["coverage"] == 0.9 and data["conformal"]["file"] == str(fitted["file"])
    frame = data["conformal"]["frames"][0]
    assert frame["EXPR_set"].split("|")[0] == data["EXPR"]["name"] and frame["valence_lo"] <= frame["valence_hi"]
    assert run_inference_one_image(argv[:-4] + ["--output_dir", str(tmp_path / "p"), "--coverage", "1.5"]) == 2
    assert "--coverage must be strictly between 0 and 1" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_video_and_test_set_get_the_columns(fitted, synth_root, tmp_path):
    from emenet.challenge.submission import members_from_names as submission_members
    from emenet.challenge.submission import write_submission
    from emenet.challenge.test_set import build_test_set, write_test_set
    video = sorted((synth_root / "videos").rglob("*.mp4"))[0]
    argv = [str(video), "--checkpoint", *map(str, fitted["paths"]), "--output_dir", str(tmp_path / "pred"),
            "--no_progress", "--coverage", "0.8", "--backend", "eager", "--min_track_length", "1"]
    assert emenet_main(["predict", *argv]) == 0
    table = pd.read_csv(next((tmp_path / "pred").glob("*_predictions.csv")), keep_default_na=False)
    assert {"EXPR_set", "AU12_set", "valence_lo", "arousal_hi", "abstain_VA"} <= set(table.columns)
    assert table["EXPR_set"].str.len().gt(0).all()
    assert set(table["EXPR_set"].str.split("|").explode()) <= set(EXPR_NAMES)

    test_set = write_test_set(build_test_set(synth_root, count_method="packets", progress=False),
                              tmp_path / "test_set.csv")
    members = submission_members([], [], fitted["root"], [str(p) for p in fitted["paths"]])
    write_submission(members, test_set, tmp_path / "sub", batch_size=16, progress=False, coverage=0.9)
    merged = sorted((tmp_path / "sub" / "merged_with_uncertainty").rglob("*.csv"))
    assert merged
    for path in merged:
        columns = set(pd.read_csv(path).columns)
        task = path.parent.name
        expected = {"AU": {"AU1_set", "abstain_AU"}, "EXPR": {"EXPR_set", "EXPR_set_size", "abstain_EXPR"},
                    "VA": {"valence_lo", "arousal_hi", "abstain_VA"}}[task]
        assert expected <= columns, (path, columns)
    for path in (tmp_path / "sub").glob("*_with_uncertainty"):
        if path.name != "merged_with_uncertainty":  # one member alone has no calibration
            assert not any("EXPR_set" in pd.read_csv(p).columns for p in path.rglob("*.csv"))
