"""The task table (emenet.tasks.TASKS) is complete and drives per-task behaviour.

Decoding, metrics, uncertainty, calibration and output columns look their behaviour up by
the TaskSpec's kind, so an 8-class expression head, or a task that is not in the table at
all, works from one TaskSpec without code changes. Expected values are hand-computed.
"""
from __future__ import annotations

import doctest
import math
import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch

from emenet import tasks as T
from emenet.evaluation.calibration import task_calibration, task_problems
from emenet.decoding import decode, task_probs
from emenet.evaluation.metrics import task_metrics
from emenet.tasks import (AU_MISSING, EXPR_MISSING, EXPR_NAMES, TASKS, VA_MISSING, TaskKind, TaskSpec, num_logits,
                          task_spec)
from emenet.uncertainty import ensemble_task_uncertainty, task_uncertainty

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "emenet"

# A task that is not in the table: 3 regressed dimensions in [-1, 1], 4 bins each.
MOOD = TaskSpec("MOOD", 12, "MOOD_Set", -5, TaskKind.BINNED_REGRESSION, ("calm", "focus", "energy"),
                num_bins=4, value_format="%.3f")
# And a multilabel one with 3 units.
CUES = TaskSpec("CUES", 3, "CUES_Set", -1, TaskKind.MULTILABEL, ("smile", "frown", "blink"))


def test_every_spec_is_complete_and_consistent():
    for key, spec in TASKS.items():
        assert spec.name == key and isinstance(spec.kind, TaskKind)
        if spec.kind is TaskKind.AUXILIARY:
            assert spec.annotation_dir is None and spec.missing_value is None and spec.header is None
            continue
        assert spec.names and spec.annotation_dir and spec.missing_value is not None
        assert spec.header == ",".join(spec.names)
        assert spec.num_logits == math.prod(spec.prob_shape)  # EXPR 7, AU 12, VA 2 * 20
        assert spec.num_logits in spec.logit_widths
        assert (spec.num_bins > 0) == (spec.kind is TaskKind.BINNED_REGRESSION)
        assert (spec.value_format is not None) == (spec.kind is TaskKind.BINNED_REGRESSION)
        assert (spec.column is not None) == (spec.kind is TaskKind.MULTICLASS)
        assert not spec.class_variants or spec.names in spec.class_variants
    # every field of a spec is data (no callables): the table stays at the bottom of the import graph
    assert {f.name for f in fields(TaskSpec)} >= {"name", "kind", "names", "missing_value", "num_bins"}


def test_table_keeps_the_annotation_file_conventions():
    assert TASKS["AU"].header == "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"
    assert TASKS["EXPR"].header == "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise"
    assert TASKS["VA"].header == "valence,arousal"
    assert (AU_MISSING, EXPR_MISSING, VA_MISSING) == (-1, -1, -5.0)
    assert [TASKS[t].frame_shape for t in ("AU", "EXPR", "VA")] == [(12,), (), (2,)]
    assert [TASKS[t].file_columns for t in ("AU", "EXPR", "VA")] == [12, 1, 2]
    assert TASKS["VA"].prob_shape == (2, 20) and TASKS["EXPR"].prob_shapes == ((7,), (8,))
    assert num_logits("EXPR", 8) == 8 and num_logits("VA") == 40 and num_logits("FA") == 136


def test_doctests():
    assert doctest.testmod(T).failed == 0


def test_class_variants_and_lookup():
    eight = task_spec("EXPR", 8)
    assert eight.names[-1] == "Other" and eight.num_logits == 8 and eight.header.endswith(",Other")
    assert task_spec("EXPR", 7) is TASKS["EXPR"] and task_spec("AU", 8) is TASKS["AU"]  # AU has no variants
    assert task_spec(MOOD) is MOOD
    with pytest.raises(ValueError, match="expected 7 or 8 EXPR classes, got 9"):
        TASKS["EXPR"].with_classes(9)
    with pytest.raises(ValueError, match="unknown task 'XYZ'"):
        task_spec("XYZ")


def test_annotated_mask_and_frame_values_per_kind():
    au = np.array([[1, -1, 0], [-1, -1, -1]], dtype=np.float32)
    np.testing.assert_array_equal(CUES.annotated(au), [[True, False, True], [False, False, False]])
    np.testing.assert_array_equal(TASKS["EXPR"].annotated(np.array([3, -1, 0])), [True, False, True])
    va = np.array([[0.5, -0.2], [-5, 0.1], [0.3, np.nan]])
    np.testing.assert_array_equal(TASKS["VA"].annotated(va), [True, False, False])
    np.testing.assert_array_equal(TASKS["EXPR"].frame_values(np.array([[4.0], [2.0]])), [4.0, 2.0])
    assert TASKS["AU"].frame_values(au) is au
    assert TASKS["EXPR"].unit_columns() == ("expression",) and TASKS["VA"].unit_columns() == ("valence", "arousal")


def test_eight_class_expression_spec_drives_decoding_metrics_and_columns():
    spec = task_spec("EXPR", 8)
    logits = torch.tensor([[0.0] * 7 + [3.0], [2.0] + [0.0] * 7, [0.0] * 7 + [1.0], [0.0, 5.0] + [0.0] * 6])
    probs = task_probs(spec, logits)
    expected = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs.numpy(), expected, rtol=1e-6)
    pred = decode(spec, probs).numpy()
    np.testing.assert_array_equal(pred, [7, 0, 7, 1])
    # labels 7, 0, 1, 1 and a missing row: accuracy 3/4; F1 class 0: 1, class 1: 2/3, class 7: 2/3,
    # the five other classes 0 -> macro F1 (1 + 4/3) / 8 = 7/24
    scores = task_metrics(spec, np.append(pred, 3), np.array([7, 0, 1, 1, EXPR_MISSING]))
    assert scores["accuracy"] == pytest.approx(0.75) and scores["f1"] == pytest.approx(7 / 24)
    assert scores["score"] == pytest.approx(0.67 * 7 / 24 + 0.33 * 0.75)
    by_name = task_metrics("EXPR", pred, np.array([7, 0, 1, 1]), num_classes=8)
    assert (by_name["accuracy"], by_name["f1"]) == (scores["accuracy"], scores["f1"])
    np.testing.assert_allclose(scores["f1_per_class"], [1, 2 / 3, 0, 0, 0, 0, 0, 2 / 3])
    assert spec.header == ",".join((*EXPR_NAMES, "Other"))
    assert [f"{name}_prob" for name in spec.names][-1] == "Other_prob"
    # class 7 is no prediction of the 7-class spec
    with pytest.raises(ValueError, match="expected predictions in"):
        task_metrics("EXPR", pred, np.array([7, 0, 1, 1]))


def test_new_binned_regression_task_is_one_spec():
    logits = torch.zeros(2, 12)
    logits[0, 3] = 50.0  # calm: bin 3 of linspace(-1, 1, 4) = 1
    logits[1, 4] = 50.0  # focus: bin 0 = -1
    probs = task_probs(MOOD, logits)
    assert probs.shape == (2, 3, 4)
    values = decode(MOOD, probs).numpy()
    # uniform bins average to 0; a saturated bin gives its centre
    np.testing.assert_allclose(values, [[1.0, 0.0, 0.0], [0.0, -1.0, 0.0]], atol=1e-6)
    pred = np.array([[0.1, 0.2, 0.3], [0.3, 0.1, 0.2], [0.5, 0.4, 0.1]])
    labels = np.array([[0.1, 0.2, 0.3], [0.3, 0.1, 0.2], [0.5, 0.4, 0.1], [-5, 0.0, 0.0]])
    with pytest.raises(ValueError, match="as many predictions"):
        task_metrics(MOOD, pred, labels)
    scores = task_metrics(MOOD, pred, labels[:3])
    assert scores == pytest.approx({"ccc_calm": 1.0, "ccc_focus": 1.0, "ccc_energy": 1.0, "ccc_mean": 1.0,
                                    "score": 3.0})
    # uncertainty: a uniform bin distribution has normalized entropy 1 per dimension
    unc = task_uncertainty({MOOD: torch.full((5, 3, 4), 0.25)})[MOOD]
    torch.testing.assert_close(unc, torch.ones(5, 3))
    # calibration: labels digitised over the spec's 4 bins ([-1, -.5), [-.5, 0), [0, .5), [.5, 1])
    problems = task_problems(MOOD, np.full((2, 3, 4), 0.25), np.array([[-1.0, -0.2, 0.7], [1.0, 0.0, -0.5]]))
    np.testing.assert_array_equal(problems["calm"][1], [0, 3])
    np.testing.assert_array_equal(problems["focus"][1], [1, 2])
    np.testing.assert_array_equal(problems["energy"][1], [3, 1])
    # uniform probabilities: NLL log 4 in every problem
    assert task_calibration(MOOD, np.full((2, 3, 4), 0.25), np.zeros((2, 3)))["energy_nll"] == pytest.approx(
        math.log(4))


def test_new_multilabel_task_is_one_spec():
    probs = task_probs(CUES, torch.tensor([[0.0, 2.0, -2.0]]))
    np.testing.assert_allclose(probs.numpy(), 1 / (1 + np.exp(-np.array([[0.0, 2.0, -2.0]]))), rtol=1e-6)
    np.testing.assert_array_equal(decode(CUES, probs).numpy(), [[0, 1, 0]])
    # unit 0: tp 1 fn 1 -> F1 2/3; unit 1: tp 1 -> 1; unit 2: all negative, predicted negative -> 0
    pred = np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0]])
    labels = np.array([[1, 1, 0], [1, -1, 0], [-1, -1, 0]])
    scores = task_metrics(CUES, pred, labels)
    np.testing.assert_allclose(scores["f1_per_au"], [2 / 3, 1.0, 0.0])
    assert scores["accuracy"] == pytest.approx(5 / 6)  # 6 annotated decisions, one wrong
    u = ensemble_task_uncertainty({CUES: torch.tensor([[[1.0, 0.5, 0.0]], [[0.0, 0.5, 0.0]]])})[CUES]
    torch.testing.assert_close(u["total"], torch.tensor([[1.0, 1.0, 0.0]]))
    torch.testing.assert_close(u["epistemic"], torch.tensor([[1.0, 0.0, 0.0]]))
    assert task_calibration(CUES, np.array([[0.5, 0.5, 0.5]]), np.array([[1, -1, 0]]))["nll_smile"] == pytest.approx(
        math.log(2))


# Modules whose per-task behaviour is looked up in the table: no branch on a task's name.
TABLE_DRIVEN = ("decoding.py", "uncertainty.py", "metrics.py", "calibration.py", "selective.py",
                "selective_report.py", "submission.py", "release_submission.py", "conformal/apply.py",
                "annotations.py", "objectives.py", "synth.py")


@pytest.mark.parametrize("module", TABLE_DRIVEN)
def test_table_driven_modules_do_not_branch_on_task_names(module):
    paths = sorted(PACKAGE_DIR.rglob(Path(module).name))  # the module may have moved to another package
    assert paths, module
    for path in paths:
        branches = re.findall(r"\b(?:task|t) (?:==|!=) \"(?:AU|EXPR|VA)\"", path.read_text())
        assert not branches, f"{path}: {branches}"
