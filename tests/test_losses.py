"""Losses against numpy/scipy re-statements and hand-computed cases; masking, weights, gradients."""
from __future__ import annotations

import doctest
import functools
import math

import numpy as np
import pytest
import torch
from scipy.special import expit, log_softmax, rel_entr, softmax

import emenet.losses as L
from emenet.tasks import NUM_VA_BINS

CENTRES = np.linspace(-1.0, 1.0, 20)
EDGES = np.linspace(-1.0, 1.0, 21)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(x))


# ------------------------------------------------------------------- numpy references

def np_bce(logits, labels, valid, pos_weight):
    p = expit(logits)
    per = -(pos_weight * labels * np.log(p) + (1 - labels) * np.log(1 - p))
    return per[valid].mean()


def np_weighted_ce(logits, labels, weight):
    valid = labels != -1
    logp = log_softmax(logits[valid], axis=1)
    y = labels[valid]
    w = weight[y]
    return float((w * -logp[np.arange(len(y)), y]).sum() / w.sum())


def np_ccc(x, y, w=None):
    w = np.full(len(x), 1.0 / len(x)) if w is None else w / w.sum()
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum()
    cov = (w * (x - mx) * (y - my)).sum()
    return 2 * cov / (vx + vy + (mx - my) ** 2)


def np_ccc_original(x, y, eps=1e-8):
    """The original's CCCLoss, restated in numpy: Pearson rho with eps, ddof-1 standard deviations."""
    vx, vy = x - x.mean(), y - y.mean()
    rho = (vx * vy).sum() / (np.sqrt((vx ** 2).sum()) * np.sqrt((vy ** 2).sum()) + eps)
    sx, sy = np.std(x, ddof=1), np.std(y, ddof=1)
    return 2 * rho * sx * sy / (sx ** 2 + sy ** 2 + (x.mean() - y.mean()) ** 2 + eps)


def np_va_expectation(logits):  # (n, 40) -> (n, 2)
    p = softmax(logits.reshape(-1, 2, 20), axis=-1)
    return (p * CENTRES).sum(-1)


# ------------------------------------------------------------------------------ AU

def test_au_loss_matches_numpy_bce_with_pos_weight_and_mask():
    rng = _rng(1)
    logits = rng.normal(size=(16, 12)) * 3
    labels = rng.integers(0, 2, size=(16, 12))
    labels[rng.random((16, 12)) < 0.2] = -1
    labels[3] = -1
    pw = np.asarray(L.AU_POS_WEIGHT)
    got = L.au_loss(_t(logits), _t(labels), pos_weight=L.AU_POS_WEIGHT)
    np.testing.assert_allclose(got.item(), np_bce(logits, labels, labels != -1, pw), rtol=1e-10)
    unweighted = L.au_loss(_t(logits), _t(labels))
    np.testing.assert_allclose(unweighted.item(), np_bce(logits, labels, labels != -1, 1.0), rtol=1e-10)


def test_au_loss_hand_case():
    # logit 0 -> BCE = ln 2 whatever the label; pos_weight 3 on the one positive: (3 ln2 + ln2) / 2.
    logits = torch.zeros(2, 12)
    labels = torch.full((2, 12), -1)
    labels[0, 0], labels[1, 0] = 1, 0
    pw = [3.0] + [1.0] * 11
    assert L.au_loss(logits, labels, pos_weight=pw).item() == pytest.approx(2 * math.log(2))


def test_au_loss_masked_and_unannotated_entries_have_no_effect():
    rng = _rng(2)
    logits = _t(rng.normal(size=(8, 12))).requires_grad_()
    labels = _t(rng.integers(0, 2, size=(8, 12)))
    labels[0, :4] = -1
    mask = torch.ones(8, 12, dtype=torch.bool)
    mask[5] = False
    mask[2, 7] = False
    base = L.au_loss(logits, labels, mask=mask, pos_weight=L.AU_POS_WEIGHT)
    base.backward()
    invalid = (labels == -1) | ~mask
    assert torch.all(logits.grad[invalid] == 0)
    changed = logits.detach().clone()
    changed[invalid] = 1e3
    labels2 = labels.clone()
    labels2[~mask] = 1 - labels2[~mask].clamp(min=0)
    again = L.au_loss(changed, labels2, mask=mask, pos_weight=L.AU_POS_WEIGHT)
    assert again.item() == pytest.approx(base.item(), rel=1e-12)


def test_au_loss_row_mask_equals_element_mask():
    rng = _rng(3)
    logits, labels = _t(rng.normal(size=(6, 12))), _t(rng.integers(0, 2, size=(6, 12)))
    rows = torch.tensor([True, False, True, True, False, True])
    a = L.au_loss(logits, labels, mask=rows)
    b = L.au_loss(logits, labels, mask=rows[:, None].expand(6, 12))
    c = L.au_loss(logits[rows], labels[rows])
    assert a.item() == pytest.approx(b.item()) == pytest.approx(c.item())


def test_au_loss_without_valid_entries_is_a_differentiable_zero():
    logits = torch.randn(3, 12, requires_grad=True)
    loss = L.au_loss(logits, torch.full((3, 12), -1))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(logits.grad == 0)


def test_au_loss_rejects_bad_inputs():
    with pytest.raises(ValueError, match="labels"):
        L.au_loss(torch.zeros(2, 12), torch.full((2, 12), 2))
    with pytest.raises(ValueError, match="same shape"):
        L.au_loss(torch.zeros(2, 12), torch.zeros(3, 12))
    with pytest.raises(ValueError, match="12 per-class weights"):
        L.au_loss(torch.zeros(2, 12), torch.zeros(2, 12), pos_weight=[1.0] * 11)
    with pytest.raises(ValueError, match="mask"):
        L.au_loss(torch.zeros(2, 12), torch.zeros(2, 12), mask=torch.ones(3, dtype=torch.bool))


def test_au_pos_weight_from_labels():
    labels = np.full((10, 12), -1)
    labels[:4, 0] = 1
    labels[4:10, 0] = 0           # AU1: 6 neg / 4 pos
    labels[:, 1] = 0              # AU2: no positive -> neutral 1
    labels[:, 2] = 1              # AU4: no negative -> neutral 1
    labels[0, 3], labels[1:4, 3] = 1, 0  # AU6: 3 / 1; the remaining -1 are ignored
    w = L.au_pos_weight_from_labels(labels)
    assert w.shape == (12,) and w.dtype == torch.float32
    np.testing.assert_allclose(w[:4].numpy(), [1.5, 1.0, 1.0, 3.0])
    np.testing.assert_allclose(w[4:].numpy(), 1.0)


def test_original_weight_constants():
    assert len(L.AU_POS_WEIGHT) == 12 and len(L.EXPR_CLASS_WEIGHT) == 7
    assert L.AU_POS_WEIGHT[0] == pytest.approx(23 / 3) and L.AU_POS_WEIGHT[10] == pytest.approx(37 / 63)
    assert L.EXPR_CLASS_WEIGHT == (2.5, 25.0, 40.0, 33.0, 4.0, 5.88, 12.5)


# ---------------------------------------------------------------------------- EXPR

def test_expr_loss_weighted_hand_case():
    # Row 0: logits (0, 0), label 0 -> nll ln 2. Row 1: logits (ln 3, 0), label 1 -> p = 1/4, nll ln 4.
    # Class weights (1, 3): (1 * ln2 + 3 * ln4) / (1 + 3) = 7/4 ln 2.
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [5.0, -5.0]], dtype=torch.float64)
    labels = torch.tensor([0, 1, -1])
    got = L.expr_loss(logits, labels, weight=[1.0, 3.0])
    assert got.item() == pytest.approx(7 / 4 * math.log(2), rel=1e-12)


def test_expr_loss_matches_numpy_weighted_mean():
    rng = _rng(4)
    logits = rng.normal(size=(32, 7)) * 2
    labels = rng.integers(0, 7, size=32)
    labels[::5] = -1
    w = np.asarray(L.EXPR_CLASS_WEIGHT)
    got = L.expr_loss(_t(logits), _t(labels), weight=L.EXPR_CLASS_WEIGHT)
    np.testing.assert_allclose(got.item(), np_weighted_ce(logits, labels, w), rtol=1e-10)
    np.testing.assert_allclose(L.expr_loss(_t(logits), _t(labels)).item(),
                               np_weighted_ce(logits, labels, np.ones(7)), rtol=1e-10)


def test_expr_loss_ignored_rows_have_no_effect_and_empty_batch_is_zero():
    rng = _rng(5)
    logits = _t(rng.normal(size=(6, 7))).requires_grad_()
    labels = torch.tensor([0, -1, 3, 6, -1, 2])
    mask = torch.tensor([True, True, True, False, True, True])
    base = L.expr_loss(logits, labels, mask=mask)
    base.backward()
    assert torch.all(logits.grad[[1, 3, 4]] == 0)
    changed = logits.detach().clone()
    changed[[1, 3, 4]] = 100.0
    assert L.expr_loss(changed, labels, mask=mask).item() == pytest.approx(base.item(), rel=1e-12)
    empty = L.expr_loss(logits, torch.full((6,), -1))
    assert empty.item() == 0.0 and empty.requires_grad


def test_expr_loss_rejects_bad_labels():
    with pytest.raises(ValueError, match=r"0\.\.6"):
        L.expr_loss(torch.zeros(2, 7), torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="shape"):
        L.expr_loss(torch.zeros(2, 7), torch.tensor([[0, 1]]))


def test_expr_weight_from_labels_is_inverse_frequency():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1 + [-1] * 5)
    w = L.expr_weight_from_labels(labels, num_classes=4)
    np.testing.assert_allclose(w.numpy(), [10 / 6, 10 / 3, 10.0, 10.0], rtol=1e-6)  # class 3 absent: counts as 1
    # Frequencies behind the original's constants give them back (up to their rounding).
    counts = np.round(1000 / np.asarray(L.EXPR_CLASS_WEIGHT)).astype(int)  # 400, 40, 25, 30, 250, 170, 80
    labels = np.repeat(np.arange(7), counts)
    np.testing.assert_allclose(L.expr_weight_from_labels(labels).numpy() * counts.sum() / 1000,
                               L.EXPR_CLASS_WEIGHT, rtol=0.02)


# ----------------------------------------------------------------------------- CCC

def test_concordance_cc_hand_case_uses_population_variances():
    # x = (1, 2, 3), y = (1, 2, 4): means 2, 7/3; var_x = 2/3, var_y = 14/9, cov = 1 (all over n):
    # CCC = 2 / (2/3 + 14/9 + 1/9) = 6/7. The n - 1 form gives 3 / (1 + 7/3 + 1/9) = 27/31.
    x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    y = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    got = L.concordance_cc(x, y).item()
    assert got == pytest.approx(6 / 7, rel=1e-12)
    sample_form = 2 * np.cov(x, y, ddof=1)[0, 1] / (x.var(unbiased=True) + y.var(unbiased=True) + (1 / 3) ** 2)
    assert float(sample_form) == pytest.approx(27 / 31) and abs(got - float(sample_form)) > 0.01


def test_concordance_cc_along_dim_and_weighted_equals_repeated_rows():
    rng = _rng(6)
    x, y = rng.normal(size=(9, 2)), rng.normal(size=(9, 2))
    got = L.concordance_cc(_t(x), _t(y), dim=0).numpy()
    np.testing.assert_allclose(got, [np_ccc(x[:, 0], y[:, 0]), np_ccc(x[:, 1], y[:, 1])], rtol=1e-10)
    np.testing.assert_allclose(L.concordance_cc(_t(x.T), _t(y.T), dim=1).numpy(), got, rtol=1e-12)
    w = rng.integers(1, 4, size=9)
    weighted = L.concordance_cc(_t(x), _t(y), dim=0, weight=_t(w.astype(float))).numpy()
    repeated = L.concordance_cc(_t(np.repeat(x, w, axis=0)), _t(np.repeat(y, w, axis=0)), dim=0).numpy()
    np.testing.assert_allclose(weighted, repeated, rtol=1e-10)
    np.testing.assert_allclose(weighted[0], np_ccc(x[:, 0], y[:, 0], w.astype(float)), rtol=1e-10)
    np.testing.assert_allclose(L.concordance_cc(_t(x), _t(y), weight=torch.ones(9, dtype=torch.float64)).numpy(),
                               got, rtol=1e-12)


# ------------------------------------------------------------------------------ VA

def _va_batch(seed: int, n: int = 24):
    rng = _rng(seed)
    logits = rng.normal(size=(n, 40)) * 2
    labels = rng.uniform(-1, 1, size=(n, 2))
    labels[0] = [-1.0, 1.0]
    labels[1] = [0.0, 0.1]
    labels[4] = -5.0
    labels[7, 1] = np.nan
    return logits, labels


def np_va_loss(logits, labels, kind, form="sample"):
    valid = ~((labels == -5) | np.isnan(labels)).any(axis=1)
    logits, labels = logits[valid], labels[valid]
    loss = 0.0
    ccc = np_ccc_original if form == "sample" else np_ccc
    if "ccc" in kind.split("+"):
        pred = np_va_expectation(logits)
        loss += (1 - ccc(pred[:, 0], labels[:, 0])) + (1 - ccc(pred[:, 1], labels[:, 1]))
    if "cce" in kind.split("+"):
        cls = np.minimum(np.digitize(labels, EDGES) - 1, 19)
        logp = log_softmax(logits.reshape(-1, 2, 20), axis=-1)
        n = np.arange(len(labels))
        loss += -logp[n, 0, cls[:, 0]].mean() - logp[n, 1, cls[:, 1]].mean()
    return loss


@pytest.mark.parametrize("form", ["sample", "population"])
@pytest.mark.parametrize("kind", ["ccc", "cce", "cce+ccc"])
def test_va_loss_matches_numpy_and_skips_missing_rows(kind, form):
    logits, labels = _va_batch(7)
    got = L.va_loss(_t(logits), _t(labels), kind=kind, ccc_form=form)
    np.testing.assert_allclose(got.item(), np_va_loss(logits, labels, kind, form), rtol=1e-7)
    if form == "population":
        return
    changed = logits.copy()
    changed[[4, 7]] = 50.0
    assert L.va_loss(_t(changed), _t(labels), kind=kind).item() == pytest.approx(got.item(), rel=1e-12)
    assert L.get_loss(kind, "VA")(_t(logits), _t(labels)).item() == pytest.approx(got.item(), rel=1e-12)


def test_va_loss_components_add_up_and_mask_drops_rows():
    logits, labels = _va_batch(8)
    lt, yt = _t(logits), _t(labels)
    both = L.va_loss(lt, yt, "cce+ccc").item()
    assert both == pytest.approx(L.va_loss(lt, yt, "cce").item() + L.va_loss(lt, yt, "ccc").item(), rel=1e-12)
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[10:14] = False
    keep = np.ones(len(labels), dtype=bool)
    keep[10:14] = False
    np.testing.assert_allclose(L.va_loss(lt, yt, "cce+ccc", mask=mask).item(), np_va_loss(logits[keep], labels[keep], "cce+ccc"),
                               rtol=1e-7)


def test_va_loss_errors_and_empty_batch():
    with pytest.raises(ValueError, match="valid kinds"):
        L.va_loss(torch.zeros(2, 40), torch.zeros(2, 2), kind="mse")
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        L.va_loss(torch.zeros(2, 40), torch.tensor([[0.0, 1.5], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"\(N, 40\)"):
        L.va_loss(torch.zeros(2, 20), torch.zeros(2, 2))
    logits = torch.zeros(3, 40, requires_grad=True)
    empty = L.va_loss(logits, torch.full((3, 2), -5.0))
    empty.backward()
    assert empty.item() == 0.0


def test_sample_ccc_by_hand_and_differs_from_the_population_form():
    x, y = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    # means 2 and 7/3; sum dx^2 = 2, sum dy^2 = 14/3, sum dx dy = 3; ddof 1: s_x^2 = 1, s_y^2 = 7/3, cov = 3/2
    expected = 2 * 1.5 / (1 + 7 / 3 + 1 / 9)
    assert float(L.sample_concordance_cc(x, y, eps=0.0)) == pytest.approx(expected, rel=1e-12)
    assert float(L.concordance_cc(x, y)) == pytest.approx(2 * 1.0 / (2 / 3 + 14 / 9 + 1 / 9), rel=1e-12)
    with pytest.raises(ValueError, match="CCC form"):
        L.va_loss(torch.zeros(2, 40), torch.zeros(2, 2), kind="ccc", ccc_form="ddof2")


def test_ccc_losses_stay_finite_on_constant_batches():
    # One valid row (or a constant teacher) makes every variance 0: the loss must not be 0/0.
    logits = torch.zeros(3, 40, requires_grad=True)
    labels = torch.tensor([[0.2, -0.3], [-5.0, -5.0], [-5.0, -5.0]])
    loss = L.va_loss(logits, labels, kind="ccc")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    student = torch.zeros(4, 40, requires_grad=True)
    loss = L.va_distill_loss(student, torch.full((4, 2, NUM_VA_BINS), 1 / NUM_VA_BINS))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(student.grad).all()


def test_fa_loss_is_mean_absolute_error():
    rng = _rng(9)
    a, b = rng.normal(size=(5, 136)), rng.normal(size=(5, 136))
    assert L.fa_loss(_t(a), _t(b)).item() == pytest.approx(np.abs(a - b).mean(), rel=1e-12)


# -------------------------------------------------------------------- distillation

def _probs(seed: int, shape, hard: bool = False):
    rng = _rng(seed)
    p = softmax(rng.normal(size=shape) * 2, axis=-1)
    if hard:  # exact zeros and ones
        p[0] = 0.0
        p[0, ..., 0] = 1.0
    return p


def test_softened_targets_hand_cases():
    # logit(0.8) = ln 4; / T=2 -> ln 2; sigmoid -> 2/3. softmax(log(0.2, 0.8) / 2) = (1/3, 2/3).
    assert L.soften_bernoulli(torch.tensor(0.8, dtype=torch.float64), 2.0).item() == pytest.approx(2 / 3)
    np.testing.assert_allclose(L.soften_categorical(torch.tensor([0.2, 0.8], dtype=torch.float64), 2.0).numpy(),
                               [1 / 3, 2 / 3], rtol=1e-12)
    p = torch.tensor([0.9, 0.05, 0.05], dtype=torch.float64)
    assert torch.allclose(L.soften_categorical(p, 1.0), p)
    flat = L.soften_categorical(p, 1e6)  # high temperature -> uniform
    np.testing.assert_allclose(flat.numpy(), 1 / 3, atol=1e-5)
    assert L.soften_bernoulli(torch.tensor(0.99), 1e6).item() == pytest.approx(0.5, abs=1e-5)


@pytest.mark.parametrize("T", [1.0, 2.0])
def test_au_distill_matches_numpy_and_is_minimal_at_the_teacher(T):
    rng = _rng(10)
    p = rng.uniform(0.01, 0.99, size=(8, 12))
    s = rng.normal(size=(8, 12))
    target = expit(np.log(p / (1 - p)) / T)
    ref = -(target * np.log(expit(s / T)) + (1 - target) * np.log(1 - expit(s / T))).mean()
    assert L.au_distill_loss(_t(s), _t(p), T).item() == pytest.approx(ref, rel=1e-10)
    at_teacher = _t(np.log(p / (1 - p))).requires_grad_()
    loss = L.au_distill_loss(at_teacher, _t(p), T)
    loss.backward()
    assert torch.allclose(at_teacher.grad, torch.zeros_like(at_teacher.grad), atol=1e-12)
    assert loss.item() < L.au_distill_loss(_t(s), _t(p), T).item()


@pytest.mark.parametrize("T", [1.0, 3.0])
def test_expr_distill_matches_scipy_rel_entr_and_is_zero_at_the_teacher(T):
    p = _probs(11, (10, 7))
    s = _rng(12).normal(size=(10, 7))
    target = softmax(np.log(p) / T, axis=1)
    q = softmax(s / T, axis=1)
    ref = rel_entr(target, q).sum() / len(p)
    assert L.expr_distill_loss(_t(s), _t(p), T).item() == pytest.approx(ref, rel=1e-10)
    assert L.expr_distill_loss(_t(np.log(p)), _t(p), T).item() == pytest.approx(0.0, abs=1e-12)


def test_va_distill_matches_numpy_and_is_zero_at_the_teacher():
    p = _probs(13, (12, 2, 20))
    s = _rng(14).normal(size=(12, 40))
    for T in (1.0, 2.0):
        teacher = (softmax(np.log(p) / T, axis=-1) * CENTRES).sum(-1)
        student = np_va_expectation(s)
        ref = sum(1 - np_ccc(student[:, d], teacher[:, d]) for d in range(2))
        got = L.va_distill_loss(_t(s), _t(p), T, ccc_form="population").item()
        assert got == pytest.approx(ref, rel=1e-10)
        ref = sum(1 - np_ccc_original(student[:, d], teacher[:, d]) for d in range(2))
        assert L.va_distill_loss(_t(s), _t(p), T).item() == pytest.approx(ref, rel=1e-10)  # the original's, ddof 1
    at_teacher = _t(np.log(p).reshape(12, 40))
    assert L.va_distill_loss(at_teacher, _t(p), 1.0, ccc_form="population").item() == pytest.approx(0.0, abs=1e-12)
    assert L.va_distill_loss(at_teacher, _t(p), 1.0).item() == pytest.approx(0.0, abs=1e-5)  # eps in the original's form
    # The student side is not tempered, so at T != 1 the teacher's own logits no longer score 0.
    assert L.va_distill_loss(at_teacher, _t(p), 2.0).item() > 1e-6


@pytest.mark.parametrize("name,shape", [("AU", (6, 12)), ("EXPR", (6, 7)), ("VA", (6, 2, 20))])
def test_distill_integer_weights_equal_repeated_frames_and_zero_weights_drop_frames(name, shape):
    fn = L.DISTILL_LOSSES[name]
    if name == "VA":  # weighted CCCs are weighted averages: the population form is the one repeated frames match
        fn = functools.partial(fn, ccc_form="population")
    p = _probs(15, shape) if name != "AU" else _rng(15).uniform(0.05, 0.95, size=shape)
    s = _rng(16).normal(size=(6, 40 if name == "VA" else shape[1]))
    w = np.array([1.0, 2.0, 3.0, 1.0, 2.0, 1.0])
    rep = np.repeat(np.arange(6), w.astype(int))
    for T in (1.0, 2.0):
        weighted = fn(_t(s), _t(p), T, weight=_t(w)).item()
        assert weighted == pytest.approx(fn(_t(s[rep]), _t(p[rep]), T).item(), rel=1e-10)
    w0 = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    s2 = s.copy()
    s2[[1, 4]] = 30.0
    assert fn(_t(s2), _t(p), 2.0, weight=_t(w0)).item() == pytest.approx(fn(_t(s), _t(p), 2.0, weight=_t(w0)).item())
    assert fn(_t(s), _t(p), weight=_t(w0)).item() == pytest.approx(fn(_t(s[w0 > 0]), _t(p[w0 > 0])).item())


@pytest.mark.parametrize("name,shape", [("AU", (4, 12)), ("EXPR", (4, 7)), ("VA", (4, 2, 20))])
@pytest.mark.parametrize("T", [1.0, 4.0])
def test_distill_gradients_are_finite_for_teacher_probabilities_of_0_and_1(name, shape, T):
    fn = L.DISTILL_LOSSES[name]
    p = _probs(17, shape, hard=True).astype(np.float32)
    if name == "AU":
        p = (_rng(17).random(shape) > 0.5).astype(np.float32)  # every soft label exactly 0 or 1
    s = torch.randn(4, 40 if name == "VA" else shape[1], requires_grad=True)
    loss = fn(s, torch.from_numpy(p), T)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(s.grad).all()


def test_distill_rejects_bad_inputs():
    with pytest.raises(ValueError, match="temperature"):
        L.expr_distill_loss(torch.zeros(2, 7), torch.full((2, 7), 1 / 7), T=0.0)
    with pytest.raises(ValueError, match="same shape"):
        L.au_distill_loss(torch.zeros(2, 12), torch.zeros(2, 7))
    with pytest.raises(ValueError, match=r"\(2, 2, 20\)"):
        L.va_distill_loss(torch.zeros(2, 40), torch.zeros(2, 40))
    with pytest.raises(ValueError, match="per-frame weights"):
        L.expr_distill_loss(torch.zeros(2, 7), torch.full((2, 7), 1 / 7), weight=torch.ones(3))


# ------------------------------------------------------------------------- registry

def test_registry_maps_the_original_option_names():
    assert set(L.LOSSES) == {"bce", "ce", "ccc", "cce", "cce+ccc", "l1_loss"}
    for task, name in L.DEFAULT_LOSS_NAMES.items():
        assert L.LOSS_TASKS[name] == task and callable(L.get_loss(name, task))
    assert L.get_loss("bce") is L.au_loss
    with pytest.raises(ValueError, match=r"valid names are \['bce', 'ce', 'ccc'"):
        L.get_loss("mse")
    with pytest.raises(ValueError, match=r"valid names are \['ccc', 'cce', 'cce\+ccc'\]"):
        L.get_loss("bce", task="VA")
    with pytest.raises(TypeError):
        L.LOSSES["mse"] = L.fa_loss  # read-only mapping: no global mutable state
    L.check_loss_name("VA", "ccc")
    with pytest.raises(ValueError, match="unknown EXPR loss 'bce'"):
        L.check_loss_name("EXPR", "bce")


def test_docstring_examples():
    assert doctest.testmod(L).failed == 0
