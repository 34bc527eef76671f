"""Challenge metrics against hand-computed confusions and numpy re-statements; accumulators."""
from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

import emenet.evaluation.metrics as M


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def np_binary_f1(y, p):
    tp = np.sum((y == 1) & (p == 1))
    fp = np.sum((y == 0) & (p == 1))
    fn = np.sum((y == 1) & (p == 0))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def np_ccc(x, y):
    cov = np.cov(x, y, bias=True)  # bias=True: divide by n
    return 2 * cov[0, 1] / (cov[0, 0] + cov[1, 1] + (x.mean() - y.mean()) ** 2)


# ----------------------------------------------------------------------------- CCC

def test_ccc_hand_case_is_the_population_form():
    # Means 2 and 7/3, var_x 2/3, var_y 14/9, cov 1 (over n): 2 / (2/3 + 14/9 + 1/9) = 6/7.
    assert M.ccc([1, 2, 3], [1, 2, 4]) == pytest.approx(6 / 7, rel=1e-12)
    # The n - 1 form (torchmetrics', the original's loss) would give 27/31.
    assert abs(M.ccc([1, 2, 3], [1, 2, 4]) - 27 / 31) > 0.01


def test_ccc_matches_numpy_and_edge_cases():
    rng = _rng(1)
    x, y = rng.normal(size=50), rng.normal(size=50) + 0.5 * np.arange(50) / 50
    assert M.ccc(x, y) == pytest.approx(np_ccc(x, y), rel=1e-12)
    assert M.ccc(x, x) == pytest.approx(1.0)
    assert M.ccc(x - x.mean(), x.mean() - x) == pytest.approx(-1.0)
    assert M.ccc(x, x + 1.0) < 1.0  # a shift is penalised, unlike Pearson's r
    assert np.isnan(M.ccc([0.3, 0.3], [0.3, 0.3]))  # 0 / 0
    with pytest.raises(ValueError, match="same length"):
        M.ccc([1, 2], [1, 2, 3])


# ------------------------------------------------------------------------------ AU

def test_au_metrics_hand_computed_confusion():
    labels = np.zeros((4, 12), dtype=int)
    pred = np.zeros((4, 12), dtype=int)
    labels[:, 0], pred[:, 0] = [1, 1, 0, 0], [1, 0, 1, 0]      # TP 1, FP 1, FN 1 -> F1 1/2; 2 of 4 right
    labels[:, 1], pred[:, 1] = [1, 0, 0, -1], [1, 0, 0, 1]     # 3 valid, all right -> F1 1
    labels[:, 11], pred[:, 11] = -1, 1                         # never annotated -> NaN, left out of the mean
    # AUs 2..10: all negative and predicted negative -> F1 0 (zero_division), 36 right decisions.
    out = M.au_metrics(pred, labels)
    assert out["f1_per_au"][0] == pytest.approx(0.5) and out["f1_per_au"][1] == pytest.approx(1.0)
    np.testing.assert_array_equal(out["f1_per_au"][2:11], 0.0)
    assert np.isnan(out["f1_per_au"][11])
    assert out["f1"] == pytest.approx(1.5 / 11)
    assert out["accuracy"] == pytest.approx((2 + 3 + 36) / (4 + 3 + 36))
    assert out["score"] == pytest.approx(0.5 * 1.5 / 11 + 0.5 * 41 / 43)


def test_au_metrics_match_numpy_restatement():
    rng = _rng(2)
    labels = rng.integers(0, 2, size=(200, 12))
    labels[rng.random((200, 12)) < 0.1] = -1
    pred = rng.integers(0, 2, size=(200, 12))
    out = M.au_metrics(pred, labels)
    f1s = [np_binary_f1(labels[labels[:, j] >= 0, j], pred[labels[:, j] >= 0, j]) for j in range(12)]
    np.testing.assert_allclose(out["f1_per_au"], f1s, rtol=1e-12)
    valid = labels >= 0
    assert out["f1"] == pytest.approx(np.mean(f1s))
    assert out["accuracy"] == pytest.approx(np.mean(pred[valid] == labels[valid]))


def test_au_metrics_reject_bad_inputs():
    with pytest.raises(ValueError, match=r"expected predictions of shape \(N, 12\)"):
        M.au_metrics(np.zeros((3, 11)), np.zeros((3, 11)))
    with pytest.raises(ValueError, match="predictions in"):
        M.au_metrics(np.full((3, 12), 0.7), np.zeros((3, 12)))
    with pytest.raises(ValueError, match="as many predictions as labels"):
        M.au_metrics(np.zeros((3, 12)), np.zeros((4, 12)))
    with pytest.raises(ValueError, match="at least one annotated"):
        M.au_metrics(np.zeros((3, 12)), np.full((3, 12), -1))


# ---------------------------------------------------------------------------- EXPR

def test_expr_metrics_hand_computed_confusion():
    labels = np.array([0, 0, 1, 2, -1])
    pred = np.array([0, 1, 1, 2, 3])  # the last row is unannotated and ignored
    # class 0: TP 1, FN 1 -> 2/3; class 1: TP 1, FP 1 -> 2/3; class 2: 1; classes 3..6: 0.
    out = M.expr_metrics(pred, labels)
    np.testing.assert_allclose(out["f1_per_class"], [2 / 3, 2 / 3, 1, 0, 0, 0, 0])
    assert out["f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 7)
    assert out["accuracy"] == pytest.approx(3 / 4)
    assert out["score"] == pytest.approx(0.67 / 3 + 0.33 * 0.75)


def test_expr_metrics_match_numpy_restatement():
    rng = _rng(3)
    labels, pred = rng.integers(0, 7, size=300), rng.integers(0, 7, size=300)
    labels[:20] = -1
    v = labels >= 0
    f1s = [np_binary_f1((labels[v] == c).astype(int), (pred[v] == c).astype(int)) for c in range(7)]
    out = M.expr_metrics(pred, labels)
    assert out["f1"] == pytest.approx(np.mean(f1s), rel=1e-12)
    assert out["accuracy"] == pytest.approx(np.mean(pred[v] == labels[v]))


def test_expr_metrics_reject_bad_inputs():
    with pytest.raises(ValueError, match=r"expected predictions of shape \(N,\)"):
        M.expr_metrics(np.zeros((3, 7)), np.zeros(3))
    with pytest.raises(ValueError, match="labels in"):
        M.expr_metrics(np.zeros(3, dtype=int), np.array([0, 7, 1]))


# ------------------------------------------------------------------------------ VA

def test_va_metrics_skip_missing_rows_and_sum_the_cccs():
    rng = _rng(4)
    labels = rng.uniform(-1, 1, size=(60, 2))
    pred = np.clip(labels + rng.normal(scale=0.3, size=(60, 2)), -1, 1)
    out = M.va_metrics(pred, labels)
    assert out["ccc_valence"] == pytest.approx(np_ccc(pred[:, 0], labels[:, 0]))
    assert out["ccc_arousal"] == pytest.approx(np_ccc(pred[:, 1], labels[:, 1]))
    assert out["score"] == pytest.approx(out["ccc_valence"] + out["ccc_arousal"])
    assert out["ccc_mean"] == pytest.approx(out["score"] / 2)
    extra_labels = np.vstack([labels, [[-5.0, -5.0], [np.nan, 0.2]]])
    extra_pred = np.vstack([pred, [[0.9, 0.9], [-0.9, 0.1]]])
    assert M.va_metrics(extra_pred, extra_labels) == pytest.approx(out)


def test_va_metrics_reject_bad_inputs():
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        M.va_metrics(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        M.va_metrics(np.array([[np.nan, 0.0], [0.1, 0.2]]), np.zeros((2, 2)))


# ------------------------------------------------------------- combined and accumulated

def _task_data(seed: int, n: int = 50):
    rng = _rng(seed)
    au_labels = rng.integers(0, 2, size=(n, 12))
    au_labels[:3] = -1
    expr_labels = rng.integers(-1, 7, size=n)
    va_labels = rng.uniform(-1, 1, size=(n, 2))
    va_labels[5] = -5
    preds = {"AU": rng.integers(0, 2, size=(n, 12)), "EXPR": rng.integers(0, 7, size=n),
             "VA": rng.uniform(-1, 1, size=(n, 2))}
    return preds, {"AU": au_labels, "EXPR": expr_labels, "VA": va_labels}


def test_challenge_scores_and_total_score():
    preds, labels = _task_data(5)
    scores = M.challenge_scores(preds, labels)
    assert list(scores) == ["EXPR", "AU", "VA"]
    expected = (0.5 * scores["AU"]["f1"] + 0.5 * scores["AU"]["accuracy"]
                + 0.67 * scores["EXPR"]["f1"] + 0.33 * scores["EXPR"]["accuracy"]
                + scores["VA"]["ccc_valence"] + scores["VA"]["ccc_arousal"])
    assert M.total_score(scores) == pytest.approx(expected)
    with pytest.raises(ValueError, match="missing"):
        M.challenge_scores(preds, {"AU": labels["AU"]})
    with pytest.raises(ValueError, match="unknown task"):
        M.challenge_scores({"FA": np.zeros((2, 136))}, {"FA": np.zeros((2, 136))})


def test_accumulated_batches_equal_one_shot_and_reset():
    preds, labels = _task_data(6, n=60)
    metrics = M.ChallengeMetrics()
    for start in range(0, 60, 16):  # uneven last batch; torch tensors and (B, T, C) shapes accepted
        batch = slice(start, start + 16)
        metrics.update("AU", torch.from_numpy(preds["AU"][batch]), torch.from_numpy(labels["AU"][batch]))
        metrics.update("EXPR", preds["EXPR"][batch][None], labels["EXPR"][batch][None])
        metrics.update("VA", preds["VA"][batch][None], labels["VA"][batch][None].astype(np.float32))
    accumulated, one_shot = metrics.task_scores(), M.challenge_scores(preds, labels)
    for task in one_shot:
        for key, value in one_shot[task].items():
            np.testing.assert_allclose(accumulated[task][key], value, rtol=1e-6)  # VA labels went float32
    assert metrics.total() == pytest.approx(M.total_score(one_shot))
    assert metrics.compute()["total_score"] == pytest.approx(M.total_score(one_shot))
    metrics.reset()
    assert metrics.task_scores() == {} and metrics.compute() == {"total_score": 0.0, "abaw3_score": 0.0}


def test_flatten_scores_gives_named_floats():
    preds, labels = _task_data(7)
    scores = M.challenge_scores(preds, labels)
    flat = M.flatten_scores(scores)
    assert all(isinstance(v, float) for v in flat.values())
    assert flat["AU_score"] == scores["AU"]["score"] and flat["EXPR_f1"] == scores["EXPR"]["f1"]
    assert flat["VA_ccc_arousal"] == scores["VA"]["ccc_arousal"]
    assert flat["AU_f1_AU12"] == scores["AU"]["f1_per_au"][6]
    assert flat["EXPR_f1_Happiness"] == scores["EXPR"]["f1_per_class"][4]
    assert flat["total_score"] == M.total_score(scores)
    assert len(flat) == (3 + 12) + (3 + 7) + 4 + 2  # + total_score and abaw3_score


def test_float_labels_with_integer_values_are_accepted():
    # Label arrays that went through NaN-able float storage still score like their integer form.
    labels = np.array([0, 3, 3, -1, 6])
    pred = np.array([0, 3, 1, 2, 6])
    as_float = M.flatten_scores({"EXPR": M.expr_metrics(pred, labels.astype(float))})
    assert as_float == pytest.approx(M.flatten_scores({"EXPR": M.expr_metrics(pred, labels)}))
    with pytest.raises(ValueError, match="labels in"):
        M.expr_metrics(pred, np.array([0, 3, 2.5, -1, 6]))


def test_task_accumulator_errors():
    acc = M.TaskMetricAccumulator("AU")
    with pytest.raises(ValueError, match="no batches"):
        acc.compute()
    with pytest.raises(ValueError, match=r"\(\.\.\., 12\)"):
        acc.update(np.zeros((2, 7)), np.zeros((2, 7)))
    with pytest.raises(ValueError, match="as many"):
        acc.update(np.zeros((2, 12)), np.zeros((3, 12)))
    with pytest.raises(ValueError, match="unknown task"):
        M.TaskMetricAccumulator("FA")
    with pytest.raises(ValueError, match="unknown task"):
        M.ChallengeMetrics(("AU",)).update("VA", np.zeros((1, 2)), np.zeros((1, 2)))


def test_docstring_examples():
    assert doctest.testmod(M).failed == 0
