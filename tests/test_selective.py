"""Selective prediction (emenet.evaluation.selective): hand-computed cases and a brute-force reference over
every tie-breaking order."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from emenet.evaluation import selective as S
from emenet.evaluation.metrics import ccc


def _brute_curve(u, loss):
    """Mean over every order of tied frames of the top-k mean loss (the definition, enumerated)."""
    u, loss = np.asarray(u, float), np.asarray(loss, float)
    n = len(u)
    curves = []
    for perm in itertools.permutations(range(n)):
        order = sorted(perm, key=lambda i: u[i])  # sorted() is stable: ties keep the permutation's order
        curves.append(np.cumsum(loss[order]) / np.arange(1, n + 1))
    return np.mean(curves, axis=0)


def test_hand_computed_curve_and_areas():
    cov, risk = S.risk_coverage_curve([0.9, 0.1, 0.5, 0.3], [1, 0, 1, 0])
    # order 0.1 (0), 0.3 (0), 0.5 (1), 0.9 (1): risks 0, 0, 1/3, 1/2
    np.testing.assert_allclose(cov, [0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(risk, [0, 0, 1 / 3, 1 / 2])
    assert S.aurc([0.9, 0.1, 0.5, 0.3], [1, 0, 1, 0]) == pytest.approx((1 / 3 + 1 / 2) / 4)
    assert S.oracle_aurc([1, 0, 1, 0]) == pytest.approx((1 / 3 + 1 / 2) / 4)
    assert S.excess_aurc([0.9, 0.1, 0.5, 0.3], [1, 0, 1, 0]) == pytest.approx(0.0)
    # the reverse ordering: 1, 1, 2/3, 1/2
    assert S.excess_aurc([0.1, 0.9, 0.3, 0.5], [1, 0, 1, 0]) == pytest.approx((1 + 1 + 2 / 3 + 1 / 2 - 5 / 6) / 4)
    assert S.risk_at_coverage([0.9, 0.1, 0.5, 0.3], [1, 0, 1, 0], 0.5) == 0.0
    assert S.risk_at_coverage([0.9, 0.1, 0.5, 0.3], [1, 0, 1, 0], 0.7) == pytest.approx(1 / 3)  # ceil(2.8) = 3


@pytest.mark.parametrize("seed", range(4))
def test_ties_match_the_expectation_over_every_order(seed):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, 3, size=6).astype(float)  # many ties
    loss = rng.random(6)
    np.testing.assert_allclose(S.risk_coverage_curve(u, loss)[1], _brute_curve(u, loss), rtol=1e-12)


def test_constant_score_is_flat_and_oracle_is_a_lower_bound():
    loss = np.random.default_rng(0).random(50)
    np.testing.assert_allclose(S.risk_coverage_curve(np.zeros(50), loss)[1], loss.mean())
    for seed in range(5):
        u = np.random.default_rng(seed + 10).random(50)
        assert S.excess_aurc(u, loss) >= -1e-12


def test_kept_mask_and_count():
    assert S.kept_count(10, 0.5) == 5 and S.kept_count(10, 0.81) == 9 and S.kept_count(3, 0.01) == 1
    np.testing.assert_array_equal(S.kept_mask([0.3, 0.1, 0.2, 0.9], 0.5), [False, True, True, False])
    with pytest.raises(ValueError):
        S.kept_count(10, 0.0)
    with pytest.raises(ValueError):
        S.aurc([0.1, np.nan], [0, 1])


def test_task_scores_per_task():
    u = np.array([0.1, 0.2, 0.3, 0.4])
    expr = S.task_selective_scores("EXPR", np.array([0, 1, 2, 3]), np.array([0, 1, 5, -1]), u)
    assert expr["EXPR_error_at50"] == 0.0 and expr["EXPR_error_aurc"] == pytest.approx((0 + 0 + 1 / 3) / 3)
    pred = np.zeros((4, 12), int)
    labels = np.zeros((4, 12), int)
    labels[3, :6] = 1  # the most uncertain frame is half wrong
    labels[1, :] = -1  # and one frame is not annotated
    au = S.task_selective_scores("AU", pred, labels, u)
    assert au["AU_error_at50"] == 0.0 and au["AU_error_aurc"] == pytest.approx((0 + 0 + 0.5 / 3) / 3)
    va_pred = np.array([[0.0, 0.1], [0.5, 0.2], [-0.3, 0.0], [0.9, -0.4]])
    va_lab = np.array([[0.1, 0.1], [0.4, 0.0], [-0.2, 0.3], [0.1, -0.9]])
    va_u = np.array([[0.1, 0.4], [0.2, 0.3], [0.3, 0.2], [0.4, 0.1]])  # arousal ranks frames in reverse
    va = S.task_selective_scores("VA", va_pred, va_lab, va_u)
    assert va["valence_abserr_at50"] == pytest.approx(0.1)
    assert va["arousal_abserr_at50"] == pytest.approx((0.5 + 0.3) / 2)
    assert va["valence_ccc_at90"] == pytest.approx(ccc(va_pred[:, 0], va_lab[:, 0]))  # ceil(3.6) = 4: all
    assert va["arousal_ccc_at50"] == pytest.approx(ccc(va_pred[[3, 2], 1], va_lab[[3, 2], 1]))


def test_au_f1_at_coverage_matches_sklearn():
    from sklearn.metrics import f1_score
    rng = np.random.default_rng(1)
    pred, labels, u = rng.integers(0, 2, (40, 12)), rng.integers(0, 2, (40, 12)), rng.random(40)
    keep = np.argsort(u)[:32]  # 80%
    expected = np.mean([f1_score(labels[keep, j], pred[keep, j], zero_division=0) for j in range(12)])
    assert S.task_selective_scores("AU", pred, labels, u)["AU_f1_at80"] == pytest.approx(expected)
