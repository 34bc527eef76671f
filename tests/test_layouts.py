"""Aff-wild2 releases: layout detection, the 8-class and multi-task readers, 3rd ABAW metrics, 8-class models."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from emenet.evaluation import metrics as M
from emenet.data.affwild2 import load_affwild2_index
from emenet.data.annotations import read_annotation_file_with_classes
from emenet.data.layouts import detect_layout
from emenet.data.mtl_annotations import MTL_HEADER, read_mtl_file
from emenet.decoding import decode, task_probs
from emenet.errors import EMENetInputError
from emenet.models.checkpoint import load_checkpoint, save_checkpoint
from emenet.models.emenet import EMENet, EMENetConfig
from emenet.tasks import AU_NAMES, EXPR_NAMES, EXPR_NAMES_WITH_OTHER
from emenet.uncertainty import task_uncertainty

EXPR8 = ",".join(EXPR_NAMES_WITH_OTHER)
AU_HEADER = ",".join(AU_NAMES)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _crops(root: Path, folder: str, name: str, frames: range) -> None:
    (root / folder / name).mkdir(parents=True, exist_ok=True)
    for f in frames:
        (root / folder / name / f"{f:05d}.jpg").write_bytes(b"")


def _abaw3_tree(base: Path, expr_folder: str = "EXPR_Classification_Challenge") -> Path:
    """A 3rd-ABAW-style annotation archive folder with one video per task and split."""
    _write(base / expr_folder / "Train_Set" / "a.txt", EXPR8 + "\n0\n7\n-1\n3\n")
    _write(base / "AU_Detection_Challenge" / "Validation_Set" / "b.txt", AU_HEADER + "\n" + "0,1,0,0,0,0,0,0,0,0,1,0\n" * 3)
    _write(base / "VA_Estimation_Challenge" / "Train_Set" / "a.txt", "valence,arousal\n0.1,0.2\n-5,-5\n0.3,0.4\n0,0\n")
    return base


# ----------------------------------------------------------------------------- layouts

def test_each_layout_is_detected_where_it_is_unpacked(tmp_path):
    old = tmp_path / "old"
    _write(old / "annotations" / "AU_Set" / "Train_Set" / "a.txt", AU_HEADER + "\n")
    assert detect_layout(old).release == "abaw2"
    renamed = tmp_path / "renamed"  # the 2021 layout with the later releases' folder names
    _abaw3_tree(renamed / "annotations")
    layout = detect_layout(renamed)
    assert layout.release == "abaw3" and layout.annotations_dir == (renamed / "annotations").resolve()
    archive = tmp_path / "sixth"
    _abaw3_tree(archive / "6th ABAW Annotations", "EXPR_Recognition_Challenge")
    layout = detect_layout(archive)
    assert layout.task_dirs["EXPR"].name == "EXPR_Recognition_Challenge" and set(layout.task_dirs) == {"AU", "EXPR", "VA"}
    mtl = tmp_path / "mtl"
    _write(mtl / "training_set_annotations_22.txt", MTL_HEADER + "\n")
    assert detect_layout(mtl).release == "mtl"


def test_layout_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EMENetInputError, match="no annotation files found.*--annotations_dir"):
        detect_layout(tmp_path / "empty")
    both = tmp_path / "both"
    _abaw3_tree(both / "Third ABAW Annotations")
    _abaw3_tree(both / "5th_ABAW_Annotations")
    with pytest.raises(EMENetInputError, match="several annotation folders found.*--annotations_dir"):
        detect_layout(both)
    assert detect_layout(both, annotations_dir=both / "5th_ABAW_Annotations").annotations_dir.name == "5th_ABAW_Annotations"
    with pytest.raises(EMENetInputError, match="--annotations_dir not found"):
        detect_layout(both, annotations_dir=tmp_path / "nope")
    with pytest.raises(EMENetInputError, match="--crops_dir not found"):
        detect_layout(both, annotations_dir=both / "5th_ABAW_Annotations", crops_dirs=[tmp_path / "nope"])


def test_index_of_annotations_elsewhere_and_crops_in_several_folders(tmp_path):
    root = tmp_path / "data"
    annotations = _abaw3_tree(tmp_path / "elsewhere" / "Third ABAW Annotations")
    _crops(root, "cropped_aligned", "a", range(1, 5))
    _crops(root, "cropped_aligned_new_50_vids", "b", range(2, 4))
    index = load_affwild2_index(root, cache_dir=tmp_path / "cache", annotations_dir=annotations)
    assert (index.release, index.num_expr_classes) == ("abaw3", 8)
    assert index.crop_dir("b") == (root / "cropped_aligned_new_50_vids" / "b").resolve()
    frames, labels, mask = index.task_labels("a", "EXPR")
    assert frames.tolist() == [1, 2, 3, 4] and labels[:, 0].tolist() == [0, 7, 0, 3] and mask[:, 0].tolist() == [1, 1, 0, 1]
    assert index.names("AU", "val") == ["b"] and index.task_labels("b", "AU")[0].tolist() == [2, 3]
    explicit = load_affwild2_index(root, cache_dir=tmp_path / "cache", annotations_dir=annotations,
                                   crops_dirs=[str(root / "cropped_aligned")])
    assert explicit.task_labels("b", "AU")[0].size == 0  # only the folder given is searched


def test_expression_headers_of_both_releases(tmp_path):
    seven = _write(tmp_path / "seven.txt", ",".join(EXPR_NAMES) + "\n6\n-1\n")
    eight = _write(tmp_path / "eight.txt", EXPR8 + "\n7\n-1\n")
    assert read_annotation_file_with_classes(seven, "EXPR")[1] == 7
    values, classes = read_annotation_file_with_classes(eight, "EXPR")
    assert classes == 8 and values[:, 0].tolist() == [7, -1]
    bad = _write(tmp_path / "bad.txt", ",".join(EXPR_NAMES) + "\n7\n")
    with pytest.raises(EMENetInputError, match=re.escape(f"{bad}:2: expr value 7: expected an integer in -1..6")):
        read_annotation_file_with_classes(bad, "EXPR")
    wrong = _write(tmp_path / "wrong.txt", EXPR8 + ",Contempt\n0\n")
    with pytest.raises(EMENetInputError, match=re.escape(f"{wrong}:1: expected header")):
        read_annotation_file_with_classes(wrong, "EXPR")


def test_one_copy_cannot_mix_seven_and_eight_classes(tmp_path):
    root = tmp_path / "mixed"
    _write(root / "annotations" / "EXPR_Set" / "Train_Set" / "a.txt", ",".join(EXPR_NAMES) + "\n0\n")
    other = _write(root / "annotations" / "EXPR_Set" / "Train_Set" / "b.txt", EXPR8 + "\n7\n")
    (root / "cropped_aligned").mkdir()
    with pytest.raises(EMENetInputError, match=re.escape(f"{other}:1: header names 8 expression classes")):
        load_affwild2_index(root, cache_dir=tmp_path / "cache")


# ----------------------------------------------------------------------------- multi-task files

def _mtl_row(image: str, v="0.5", a="-0.25", e="7", aus="1,0,0,0,0,0,0,0,0,0,0,1") -> str:
    return f"{image},{v},{a},{e},{aus}\n"


def test_mtl_file_rows_and_index(tmp_path):
    root = tmp_path / "mtl"
    path = _write(root / "training_set_annotations_22.txt", MTL_HEADER + "\n" + _mtl_row("v1/00003.jpg")
                  + _mtl_row("v1/00001.jpg", "-5", "-5", "-1", ",".join(["-1"] * 12)) + _mtl_row("v2/00010.jpg", e="2"))
    _write(root / "validation_set_annotations_22.txt", MTL_HEADER + "\n" + _mtl_row("v3/00002.jpg"))
    rows = read_mtl_file(path)
    assert rows.names.tolist() == ["v1", "v1", "v2"] and rows.frames.tolist() == [3, 1, 10]
    assert rows.va[0].tolist() == [0.5, -0.25] and rows.expr.tolist() == [7, -1, 2] and rows.au[0, [0, 11]].tolist() == [1, 1]
    _crops(root, "cropped_aligned", "v1", [1, 3, 5])  # frame 5 has a crop but no row: not in the index
    _crops(root, "cropped_aligned", "v2", [10])
    _crops(root, "cropped_aligned", "v3", [2])
    index = load_affwild2_index(root, cache_dir=tmp_path / "cache")
    assert (index.release, index.num_expr_classes) == ("mtl", 8)
    frames, labels, mask = index.task_labels("v1", "VA")
    assert frames.tolist() == [1, 3] and mask.tolist() == [[False, False], [True, True]]
    assert index.task_labels("v1", "EXPR")[1][:, 0].tolist() == [0, 7]
    assert index.names("EXPR", "train") == ["v1", "v2"] and index.names("VA", "val") == ["v3"]


@pytest.mark.parametrize("row, line, fragment", [
    ("v1/1.png,0,0,0," + ",".join(["0"] * 12), 3, "expected <video>/<frame>.jpg"),
    ("v1/00002.jpg,0,0,0,0", 3, "expected 16 comma-separated values, got 5"),
    ("v1/00002.jpg,0,0,8," + ",".join(["0"] * 12), 3, "expr value 8: expected an integer in -1..7"),
    ("v1/00002.jpg,2,0,0," + ",".join(["0"] * 12), 3, "valence value 2"),
    ("v1/00002.jpg,0,0,x," + ",".join(["0"] * 12), 3, "non-numeric value 'x'"),
    ("v1/00001.jpg,0,0,0," + ",".join(["0"] * 12), 3, "image v1/1 is listed twice"),
])
def test_malformed_mtl_rows_name_file_and_line(tmp_path, row, line, fragment):
    path = _write(tmp_path / "training_set_annotations_22.txt",
                  MTL_HEADER + "\n" + _mtl_row("v1/00001.jpg") + row + "\n")
    with pytest.raises(EMENetInputError, match=re.escape(f"{path}:{line}: ") + ".*" + re.escape(fragment)):
        read_mtl_file(path)
    header = _write(tmp_path / "h.txt", "image,valence\n")
    with pytest.raises(EMENetInputError, match=re.escape(f"{header}:1: expected header '{MTL_HEADER}'")):
        read_mtl_file(header)


# ----------------------------------------------------------------------------- metrics

def test_abaw3_measures_on_a_hand_computed_case():
    au_labels = np.tile([[1], [0]], (1, 12))
    au_pred = au_labels.copy()
    au_pred[:, 6:] = 0  # AU1-AU10 right (F1 1), AU12-AU26 never predicted (F1 0)
    expr_labels, expr_pred = [0, 7, 7, 1, -1], [0, 7, 1, 1, 3]
    va_labels = [[1, 0.1], [2, 0.5], [4, -0.2], [-5, -5]]
    va_pred = [[1, 0.1], [2, 0.5], [3, -0.2], [9, 9]]
    scores = M.challenge_scores({"AU": au_pred, "EXPR": expr_pred, "VA": va_pred},
                                {"AU": au_labels, "EXPR": expr_labels, "VA": va_labels}, num_expr_classes=8)
    assert scores["AU"]["f1"] == pytest.approx(0.5)
    # class 0: F1 1; class 7: P 1, R 1/2 -> 2/3; class 1: P 1/2, R 1 -> 2/3; the 5 absent classes 0; over 8
    assert scores["EXPR"]["f1"] == pytest.approx(7 / 24)
    assert scores["VA"]["ccc_mean"] == pytest.approx((6 / 7 + 1) / 2)
    assert M.abaw3_score(scores) == pytest.approx(0.5 + 7 / 24 + 13 / 14)
    flat = M.flatten_scores(scores)
    assert flat["abaw3_score"] == pytest.approx(0.5 + 7 / 24 + 13 / 14) and flat["EXPR_f1_Other"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="expected predictions in"):
        M.expr_metrics([7], [7])  # 7-class scoring has no class 7


def test_selection_metric_follows_the_release_unless_told():
    assert [M.selection_metric("auto", r) for r in ("abaw2", "abaw3", "mtl")] == ["total_score", "abaw3_score", "abaw3_score"]
    assert M.selection_metric("abaw6", "abaw2") == "abaw3_score" and M.selection_metric("EXPR_f1", "mtl") == "EXPR_f1"
    with pytest.raises(EMENetInputError, match="--metric 'nope'"):
        M.selection_metric("nope", "abaw2", available=["total_score"])
    from emenet.training.config import TrainConfig
    assert TrainConfig(metric="VA_ccc_mean").metric == "VA_ccc_mean"
    with pytest.raises(EMENetInputError, match="--metric 'best': expected auto, a release"):
        TrainConfig(metric="best")


# ----------------------------------------------------------------------------- 8-class models

def test_eight_class_checkpoint_round_trips(tmp_path):
    model = EMENet(EMENetConfig(num_expr_classes=8)).eval()
    frames = torch.rand(1, 3, 3, 112, 112)
    path = save_checkpoint(tmp_path / "m.pth", model, 1)
    again = load_checkpoint(path)
    assert again.config.num_expr_classes == 8
    torch.testing.assert_close(again(frames)[0]["EXPR"], model(frames)[0]["EXPR"])
    # an original-format file (no config): the 8-wide decoder is recognised as the EXPR head
    torch.save({"state_dict": model.state_dict(), "epoch": 1}, tmp_path / "orig.pth")
    assert load_checkpoint(tmp_path / "orig.pth").config.num_expr_classes == 8
    assert EMENetConfig.from_dict({"tasks": ["EXPR"]}).num_expr_classes == 7  # configs written before the field
    with pytest.raises(EMENetInputError, match="expected 7 or 8 expression classes, got 9"):
        EMENetConfig(num_expr_classes=9)


def test_nhead_reaches_the_transformer_and_old_configs_keep_four_heads():
    model = EMENet(EMENetConfig(temporal_model="transformer", num_heads=8))
    assert model.tmodels[0].encoder.layers[0].self_attn.num_heads == 8
    assert EMENetConfig(temporal_model="transformer").num_heads == 2  # the original's default
    old = EMENetConfig.from_dict({"tasks": ["AU"], "temporal_model": "transformer"})
    assert old.num_heads == 4  # what the transformer head had before the option existed
    with pytest.raises(EMENetInputError, match="--nhead 3 must be positive and divide --nhid 128"):
        EMENetConfig(temporal_model="transformer", num_heads=3)


def test_decoding_uncertainty_and_tables_carry_other():
    from emenet.inference.results import FramePredictions, TaskUncertainty
    logits = torch.zeros(2, 8)
    logits[:, 7] = 3.0
    probs = task_probs("EXPR", logits)
    assert decode("EXPR", probs).tolist() == [7, 7]
    u = task_uncertainty({"EXPR": probs})["EXPR"]
    assert u.shape == (2,) and float(u[0]) < 1
    preds = FramePredictions(num_models=1, expr_probs=probs.numpy(), expr=np.array([7, 7]),
                             uncertainty={"EXPR": TaskUncertainty(u.numpy(), u.numpy(), None)})
    table = preds.to_dataframe()
    assert "Other_prob" in table and table["expression_name"].tolist() == ["Other", "Other"]


# ----------------------------------------------------------------------------- label pictures

def test_au_frequency_and_task_affinity_by_hand():
    from emenet.viz.label_statistics import au_frequency, one_hot_expressions, task_affinity
    au = np.zeros((4, 12))
    au[:, 0] = [1, 0, 1, -1]  # AU1: active in 2 of its 3 annotated frames
    au[:, 1] = -1  # AU2 never annotated
    expr = one_hot_expressions(np.array([0, 0, 7, 7]), 8)
    freq = au_frequency(au)
    assert freq[0] == pytest.approx(2 / 3) and np.isnan(freq[1]) and freq[2] == 0
    aff = task_affinity(au, expr)
    assert aff.shape == (8, 12)
    assert aff[0, 0] == pytest.approx(0.5) and aff[7, 0] == pytest.approx(1.0)  # frame 4's AU1 is unannotated
    assert np.isnan(aff[3, 0]) and np.isnan(aff[0, 1])
    soft = task_affinity(np.array([[0.8], [0.2]]), np.array([[0.5, 0.5], [1.0, 0.0]]))
    assert soft[:, 0].tolist() == pytest.approx([(0.4 + 0.2) / 1.5, 0.8])  # probabilities weigh the frames
