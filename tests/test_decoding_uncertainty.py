"""Decoding (probabilities, predictions, VA digitisation) and normalized-entropy uncertainty."""
from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
from scipy.special import expit, softmax
from scipy.stats import entropy as scipy_entropy

import emenet.decoding as D
import emenet.uncertainty as U
from emenet.tasks import VA_BIN_CENTRES, VA_BIN_EDGES

CENTRES = np.linspace(-1.0, 1.0, 20)
EDGES = np.linspace(-1.0, 1.0, 21)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ------------------------------------------------------------------------- decoding

def test_probabilities_match_numpy_on_any_leading_shape():
    rng = _rng(1)
    au, expr, va = rng.normal(size=(2, 3, 12)), rng.normal(size=(2, 3, 7)), rng.normal(size=(2, 3, 40))
    np.testing.assert_allclose(D.au_probs(torch.from_numpy(au)).numpy(), expit(au), rtol=1e-12)
    np.testing.assert_allclose(D.expr_probs(torch.from_numpy(expr)).numpy(), softmax(expr, -1), rtol=1e-12)
    vp = D.va_probs(torch.from_numpy(va))
    assert vp.shape == (2, 3, 2, 20)
    np.testing.assert_allclose(vp[..., 0, :].numpy(), softmax(va[..., :20], -1), rtol=1e-12)  # valence first
    np.testing.assert_allclose(vp[..., 1, :].numpy(), softmax(va[..., 20:], -1), rtol=1e-12)
    for task, x in (("AU", au), ("EXPR", expr), ("VA", va)):
        assert D.task_probs(task, torch.from_numpy(x)).shape[:2] == (2, 3)


def test_va_expectation_uses_the_20_bin_centres():
    one_hot = torch.zeros(20, 2, 20, dtype=torch.float64)
    for k in range(20):
        one_hot[k, :, k] = 1.0
    np.testing.assert_allclose(D.va_expectation(one_hot)[:, 0].numpy(), CENTRES, rtol=1e-15)
    assert torch.all(D.va_expectation(torch.full((2, 20), 0.05)).abs() < 1e-7)  # uniform -> 0
    logits = _rng(2).normal(size=(5, 40))
    expected = (softmax(logits.reshape(5, 2, 20), -1) * CENTRES).sum(-1)
    np.testing.assert_allclose(D.decode("VA", D.va_probs(torch.from_numpy(logits))).numpy(), expected, rtol=1e-12)
    # float32 inputs see exactly the tasks module's float32 constants.
    f32 = D.va_expectation(torch.eye(20)[None].expand(2, 20, 20).permute(1, 0, 2).contiguous())
    np.testing.assert_array_equal(f32[:, 0].numpy(), VA_BIN_CENTRES)


def test_decode_au_threshold_and_expr_argmax():
    p = torch.tensor([[0.5, 0.5000001, 0.0, 1.0] * 3])
    np.testing.assert_array_equal(D.decode("AU", p).numpy(), [[0, 1, 0, 1] * 3])  # strictly above 0.5
    probs = torch.tensor([[[0.1, 0.2, 0.05, 0.05, 0.5, 0.05, 0.05], [0.9, 0.02, 0.02, 0.02, 0.02, 0.01, 0.01]]])
    decoded = D.decode("EXPR", probs)
    assert decoded.shape == (1, 2) and decoded.tolist() == [[4, 0]]


def test_decoding_rejects_bad_inputs():
    with pytest.raises(ValueError, match="valid tasks"):
        D.task_probs("FA", torch.zeros(1, 136))
    with pytest.raises(ValueError, match=r"\(\.\.\., 40\)"):
        D.va_probs(torch.zeros(2, 20))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, 20\)"):
        D.va_expectation(torch.zeros(2, 40))


def test_va_digitize_edge_cases():
    got = D.va_digitize(torch.tensor([-1.0, 0.0, 1.0, 0.999, -0.9, -0.9000001]))
    assert got.tolist() == [0, 10, 19, 19, 1, 0]
    for dtype in (torch.float32, torch.float64):  # a label exactly on edge k (k < 20) falls into class k
        edges = torch.from_numpy(EDGES).to(dtype)
        assert D.va_digitize(edges).tolist() == [*range(20), 19]
    np.testing.assert_array_equal(np.linspace(-1.0, 1.0, 21).astype(np.float32), VA_BIN_EDGES)


def test_va_digitize_matches_np_digitize():
    x = _rng(3).uniform(-1, 1, size=(100, 2))
    expected = np.minimum(np.digitize(x, EDGES) - 1, 19)
    np.testing.assert_array_equal(D.va_digitize(torch.from_numpy(x)).numpy(), expected)
    np.testing.assert_array_equal(D.va_digitize(torch.from_numpy(x).float()).numpy(),
                                  np.minimum(np.digitize(x.astype(np.float32), VA_BIN_EDGES) - 1, 19))


def test_va_digitize_rejects_unmasked_and_out_of_range_labels():
    for bad in (-5.0, 1.01, float("nan")):
        with pytest.raises(ValueError, match=r"\[-1, 1\]"):
            D.va_digitize(torch.tensor([0.0, bad]))


# ------------------------------------------------------------------------ uncertainty

def test_normalized_entropy_hand_cases_and_scipy():
    assert U.normalized_entropy(torch.full((7,), 1 / 7)).item() == pytest.approx(1.0)
    assert U.normalized_entropy(torch.tensor([0.0, 1.0, 0.0])).item() == 0.0
    # (1/2, 1/4, 1/4): H = 1.5 ln 2, over ln 3.
    h = U.normalized_entropy(torch.tensor([0.5, 0.25, 0.25], dtype=torch.float64)).item()
    assert h == pytest.approx(1.5 * math.log(2) / math.log(3))
    p = softmax(_rng(4).normal(size=(6, 2, 20)) * 2, -1)
    np.testing.assert_allclose(U.normalized_entropy(torch.from_numpy(p)).numpy(),
                               scipy_entropy(p, axis=-1) / math.log(20), rtol=1e-12)
    np.testing.assert_allclose(U.normalized_entropy(torch.from_numpy(p).transpose(1, 2), dim=1).numpy(),
                               scipy_entropy(p, axis=-1) / math.log(20), rtol=1e-12)
    with pytest.raises(ValueError, match="at least 2 outcomes"):
        U.normalized_entropy(torch.ones(3, 1))


def test_bernoulli_normalized_entropy():
    p = torch.tensor([0.0, 1.0, 0.5, 0.25], dtype=torch.float64)
    h = U.bernoulli_normalized_entropy(p)
    assert h[:3].tolist() == [0.0, 0.0, 1.0]
    assert h[3].item() == pytest.approx(-(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)))


def test_ensemble_of_two_disagreeing_one_hot_members():
    members = torch.zeros(2, 7)
    members[0, 0], members[1, 3] = 1.0, 1.0
    u = U.ensemble_uncertainty(members)
    # Mean (1/2, 0, 0, 1/2, 0, 0, 0): H = ln 2 -> ln 2 / ln 7; members certain -> aleatoric 0.
    assert u["total"].item() == pytest.approx(math.log(2) / math.log(7))
    assert u["aleatoric"].item() == 0.0
    assert u["epistemic"].item() == pytest.approx(math.log(2) / math.log(7))
    au = U.ensemble_uncertainty(torch.tensor([0.0, 1.0]), binary=True)
    assert (au["total"].item(), au["aleatoric"].item(), au["epistemic"].item()) == (1.0, 0.0, 1.0)


def test_ensemble_of_identical_members_has_no_epistemic_uncertainty():
    p = torch.from_numpy(softmax(_rng(5).normal(size=(4, 7)), -1))
    u = U.ensemble_uncertainty(p.expand(3, 4, 7))
    assert torch.allclose(u["total"], u["aleatoric"])
    assert torch.allclose(u["epistemic"], torch.zeros(4, dtype=torch.float64), atol=1e-12)


def test_ensemble_task_uncertainty_shapes_and_decomposition():
    rng = _rng(6)
    m, b, t = 5, 2, 3
    probs = {"AU": torch.from_numpy(rng.uniform(size=(m, b, t, 12))),
             "EXPR": torch.from_numpy(softmax(rng.normal(size=(m, b, t, 7)), -1)),
             "VA": torch.from_numpy(softmax(rng.normal(size=(m, b, t, 2, 20)), -1))}
    out = U.ensemble_task_uncertainty(probs)
    assert out["AU"]["total"].shape == (b, t, 12)
    assert out["EXPR"]["total"].shape == (b, t)
    assert out["VA"]["total"].shape == (b, t, 2)
    for task, u in out.items():
        assert torch.allclose(u["epistemic"], u["total"] - u["aleatoric"])
        assert torch.all(u["epistemic"] >= -1e-12) and torch.all((u["total"] >= 0) & (u["total"] <= 1 + 1e-12))
    ev = probs["VA"].mean(0)
    expected_total = scipy_entropy(ev.numpy(), axis=-1) / math.log(20)
    np.testing.assert_allclose(out["VA"]["total"].numpy(), expected_total, rtol=1e-12)
    single = U.task_uncertainty({k: v[0] for k, v in probs.items()})
    assert single["AU"].shape == (b, t, 12) and single["EXPR"].shape == (b, t) and single["VA"].shape == (b, t, 2)
    np.testing.assert_allclose(single["EXPR"].numpy(), scipy_entropy(probs["EXPR"][0].numpy(), axis=-1) / math.log(7))


def test_uncertainty_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"EXPR probabilities: expected shape \(M, \.\.\., 7\)"):
        U.ensemble_task_uncertainty({"EXPR": torch.full((2, 6), 1 / 6)})
    with pytest.raises(ValueError, match=r"VA probabilities"):
        U.task_uncertainty({"VA": torch.full((3, 40), 1 / 20)})
    with pytest.raises(ValueError, match="valid tasks"):
        U.task_uncertainty({"FA": torch.zeros(3, 136)})


def test_docstring_examples():
    assert doctest.testmod(D).failed == 0
    assert doctest.testmod(U).failed == 0
