"""Calibration scores against torchmetrics and sklearn, hand cases, temperature scaling, MC dropout."""
from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from sklearn.metrics import brier_score_loss, log_loss

import emenet
from emenet.evaluation import calibration as C
from emenet.decoding import va_probs
from emenet.tasks import AU_NAMES, NUM_VA_BINS, VA_BIN_EDGES
from emenet.uncertainty import ensemble_task_uncertainty


def _random_probs(rng: np.random.Generator, n: int, k: int, sharpness: float = 3.0) -> np.ndarray:
    z = rng.normal(scale=sharpness, size=(n, k))
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


# --- ECE against torchmetrics ------------------------------------------------------------------

@pytest.mark.parametrize("n_bins", [10, 7, 1])
@pytest.mark.parametrize("k", [7, 20])
def test_multiclass_ece_matches_torchmetrics(require_extra, n_bins, k):
    tm = require_extra("torchmetrics.functional.classification", "test")
    rng = np.random.default_rng(k * 100 + n_bins)
    probs = _random_probs(rng, 500, k)
    labels = np.where(rng.random(500) < 0.5, probs.argmax(1), rng.integers(0, k, 500))
    assert probs.max() < 1.0  # torchmetrics gives exactly 1.0 a bin of its own
    ours = C.multiclass_ece(probs, labels, n_bins)
    ref = tm.multiclass_calibration_error(torch.from_numpy(probs), torch.from_numpy(labels), num_classes=k,
                                          n_bins=n_bins, norm="l1")
    assert ours == pytest.approx(float(ref), abs=1e-6)  # torchmetrics works in float32


@pytest.mark.parametrize("n_bins", [10, 15])
def test_binary_ece_matches_torchmetrics(require_extra, n_bins):
    tm = require_extra("torchmetrics.functional.classification", "test")
    rng = np.random.default_rng(n_bins)
    probs = rng.random(800) * 0.999
    labels = (rng.random(800) < probs ** 1.5).astype(np.int64)
    ours = C.binary_ece(probs, labels, n_bins)
    ref = tm.binary_calibration_error(torch.from_numpy(probs), torch.from_numpy(labels), n_bins=n_bins, norm="l1")
    assert ours == pytest.approx(float(ref), abs=1e-6)  # torchmetrics works in float32


def test_ece_hand_cases():
    # Perfectly calibrated: in each bin the accuracy equals the confidence.
    conf = np.array([0.75] * 4 + [0.25] * 4)
    outcome = np.array([1, 1, 1, 0] + [1, 0, 0, 0])
    assert C.reliability_bins(conf, outcome).ece == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    assert C.binary_ece(p, (rng.random(p.size) < p).astype(float)) < 0.01
    # Overconfident: 99 % sure, right 60 % of the time.
    probs = np.tile([0.99, 0.01], (100, 1))
    labels = np.r_[np.zeros(60), np.ones(40)]
    assert C.multiclass_ece(probs, labels) == pytest.approx(0.39)
    # Edges: [lo, hi) bins, 1.0 in the last bin, 0.0 in the first.
    bins = C.reliability_bins([0.0, 0.1, 0.2 - 1e-12, 1.0], [0, 1, 1, 1])
    assert bins.counts.tolist() == [1, 2] + [0] * 7 + [1]
    assert np.isnan(bins.accuracy[2]) and bins.total == 4


def test_top_label_and_input_checks():
    conf, correct = C.top_label([[0.2, 0.8], [0.6, 0.4]], [1, 1])
    assert conf.tolist() == [0.8, 0.6] and correct.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\]"):
        C.binary_ece([1.2], [1])
    with pytest.raises(ValueError, match="integer labels in 0..1"):
        C.multiclass_nll([[0.5, 0.5]], [2])
    with pytest.raises(ValueError, match="0/1 labels"):
        C.binary_brier([0.5], [0.5])
    with pytest.raises(ValueError, match="at least one frame"):
        C.multiclass_ece(np.zeros((0, 3)), np.zeros(0))


# --- NLL and Brier against sklearn -------------------------------------------------------------

def test_nll_and_brier_match_sklearn():
    rng = np.random.default_rng(1)
    probs = _random_probs(rng, 300, 7, sharpness=1.0)
    labels = rng.integers(0, 7, 300)
    assert C.multiclass_nll(probs, labels) == pytest.approx(log_loss(labels, probs, labels=range(7)), rel=1e-10)
    assert C.multiclass_brier(probs, labels) == pytest.approx(
        brier_score_loss(labels, probs, labels=range(7), scale_by_half=False), rel=1e-10)
    p = rng.uniform(0.01, 0.99, 300)
    y = (rng.random(300) < p).astype(int)
    assert C.binary_nll(p, y) == pytest.approx(log_loss(y, p, labels=[0, 1]), rel=1e-10)
    assert C.binary_brier(p, y) == pytest.approx(brier_score_loss(y, p), rel=1e-10)
    # hand cases: a certain right answer costs 0, a certain wrong one is clipped
    assert C.multiclass_nll([[1.0, 0.0]], [0]) == 0.0
    assert C.multiclass_nll([[1.0, 0.0]], [1]) == pytest.approx(-np.log(C.PROB_EPS))
    assert C.multiclass_brier([[1.0, 0.0]], [1]) == 2.0


# --- per task ----------------------------------------------------------------------------------

def test_task_calibration_masks_and_averages():
    rng = np.random.default_rng(2)
    n = 120
    au_p = rng.random((n, 12))
    au_y = (rng.random((n, 12)) < 0.3).astype(float)
    au_y[:40, 3] = -1  # unannotated entries
    au_y[:, 11] = -1  # an AU without any annotation
    scores = C.task_calibration("AU", au_p, au_y)
    per_au = [C.binary_ece(au_p[au_y[:, j] >= 0, j], au_y[au_y[:, j] >= 0, j]) for j in range(11)]
    assert scores[f"ece_{AU_NAMES[3]}"] == pytest.approx(per_au[3])
    assert scores["ece"] == pytest.approx(np.mean(per_au))
    assert f"ece_{AU_NAMES[11]}" not in scores
    valid = au_y >= 0
    assert scores["ece_pooled"] == pytest.approx(C.binary_ece(au_p[valid], au_y[valid]))

    expr_p = _random_probs(rng, n, 7)
    expr_y = rng.integers(-1, 7, n)
    keep = expr_y >= 0
    assert C.task_calibration("EXPR", expr_p, expr_y) == pytest.approx(
        C.multiclass_calibration(expr_p[keep], expr_y[keep]))

    va_p = va_probs(torch.randn(n, 40)).double().numpy()
    va_y = rng.uniform(-1, 1, (n, 2))
    va_y[:10] = -5.0
    va_y[10] = [1.0, -1.0]  # edges: 1.0 -> class 19, -1.0 -> class 0
    va = C.task_calibration("VA", va_p, va_y)
    classes = np.digitize(va_y[10:, 0], np.linspace(-1, 1, 21)).clip(max=20) - 1  # the original's np.digitize
    assert classes.max() == 19 and classes.min() == 0
    assert va["valence_nll"] == pytest.approx(C.multiclass_nll(va_p[10:, 0], classes))
    assert va["nll"] == pytest.approx((va["valence_nll"] + va["arousal_nll"]) / 2)
    assert C.task_calibration("VA", va_p[:10], va_y[:10]) == {}

    flat = C.calibration_scores({"AU": au_p, "VA": va_p}, {"AU": au_y, "VA": va_y})
    assert flat["AU_ece"] == scores["ece"] and flat["VA_arousal_brier"] == va["arousal_brier"]
    with pytest.raises(ValueError, match="expected probabilities of shape \\(N, 2, 20\\)"):
        C.task_calibration("VA", va_p[:, 0], va_y)


# --- temperature scaling -----------------------------------------------------------------------

def _sample(rng: np.random.Generator, logits: np.ndarray, temperature: float) -> np.ndarray:
    p = np.exp(logits / temperature - (logits / temperature).max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    u = rng.random(p.shape[:-1] + (1,))
    return (p.cumsum(axis=-1) < u).sum(axis=-1).clip(max=p.shape[-1] - 1)


def test_temperature_scaling_recovers_known_temperatures():
    rng = np.random.default_rng(3)
    n = 6000
    expr_z = rng.normal(scale=4.0, size=(n, 7))
    au_z = rng.normal(scale=4.0, size=(n, 12))
    au_y = (rng.random((n, 12)) < 1 / (1 + np.exp(-au_z / 0.5))).astype(float)
    au_y[rng.random((n, 12)) < 0.3] = -1  # unannotated entries do not count
    va_z = rng.normal(scale=3.0, size=(n, 2, NUM_VA_BINS))
    va_classes = np.stack([_sample(rng, va_z[:, 0], 1.5), _sample(rng, va_z[:, 1], 0.6)], axis=1)
    centres = (VA_BIN_EDGES[:-1] + VA_BIN_EDGES[1:]) / 2
    ts = C.fit_temperature_scaling({"EXPR": expr_z, "AU": au_z, "VA": va_z.reshape(n, 40)},
                                   {"EXPR": _sample(rng, expr_z, 2.5), "AU": au_y, "VA": centres[va_classes]})
    assert ts.temperatures["EXPR"][0] == pytest.approx(2.5, rel=0.08)
    assert ts.temperatures["AU"].shape == (1,) and ts.temperatures["AU"][0] == pytest.approx(0.5, rel=0.08)
    assert ts.temperatures["VA"] == pytest.approx([1.5, 0.6], rel=0.08)
    scaled = ts.scale("VA", torch.from_numpy(va_z.reshape(n, 40)))
    assert torch.allclose(scaled.view(n, 2, NUM_VA_BINS)[:, 1], torch.from_numpy(va_z[:, 1]) / ts.temperatures["VA"][1])
    per_au = C.fit_temperature_scaling({"AU": au_z}, {"AU": au_y}, au_per_unit=True)
    assert per_au.temperatures["AU"].shape == (12,)
    assert per_au.temperatures["AU"] == pytest.approx(np.full(12, 0.5), rel=0.2)


def test_temperature_scaling_lowers_nll_of_an_overconfident_model():
    rng = np.random.default_rng(4)
    z = rng.normal(scale=1.5, size=(4000, 7))
    y = _sample(rng, z, 1.0)
    overconfident = 4.0 * z  # right ranking, far too sharp
    fit, held_out = slice(0, 2000), slice(2000, None)
    ts = C.fit_temperature_scaling({"EXPR": overconfident[fit]}, {"EXPR": y[fit]})
    assert ts.temperatures["EXPR"][0] == pytest.approx(4.0, rel=0.15)
    before = torch.softmax(torch.from_numpy(overconfident[held_out]), -1).numpy()
    after = torch.softmax(ts.scale("EXPR", torch.from_numpy(overconfident[held_out])), -1).numpy()
    assert C.multiclass_nll(after, y[held_out]) < 0.8 * C.multiclass_nll(before, y[held_out])
    assert C.multiclass_ece(after, y[held_out]) < C.multiclass_ece(before, y[held_out])
    assert (after.argmax(1) == before.argmax(1)).all()  # decisions unchanged


def test_temperature_without_annotations_stays_one(caplog):
    ts = C.fit_temperature_scaling({"EXPR": np.zeros((3, 7))}, {"EXPR": np.full(3, -1)})
    assert ts.temperatures["EXPR"].tolist() == [1.0]
    assert "keeping T = 1" in caplog.text
    assert ts.to_dict() == {"EXPR": [1.0]}


# --- MC dropout --------------------------------------------------------------------------------

def test_mc_dropout_passes_differ_and_eval_is_deterministic():
    torch.manual_seed(0)
    model = emenet.create_model("emenet_v").train()
    frames = torch.rand(1, 3, 3, 112, 112)
    bn = next(m for m in model.backbone.modules() if isinstance(m, torch.nn.BatchNorm2d))
    running_mean = bn.running_mean.clone()
    with torch.random.fork_rng():
        torch.manual_seed(7)
        passes, hidden = C.mc_dropout_logits(model, frames, passes=4)
    with torch.random.fork_rng():
        torch.manual_seed(7)
        again, _ = C.mc_dropout_logits(model, frames, passes=4)
    assert len(passes) == 4 and len(hidden) == 4
    for task in ("EXPR", "AU", "VA"):
        assert not torch.allclose(passes[0][task], passes[1][task])  # masks differ between passes
        assert torch.equal(passes[2][task], again[2][task])  # seeded: reproducible
    assert torch.equal(bn.running_mean, running_mean)  # batch norm stayed in eval mode
    assert model.training and all(m.training for m in model.modules())  # modes restored
    model.eval()
    with torch.no_grad():
        a, _ = model(frames)
        b, _ = model(frames)
    for task in a:
        assert torch.equal(a[task], b[task])
    stack = C.stack_probs(passes)
    assert stack["VA"].shape == (4, 1, 3, 2, NUM_VA_BINS) and stack["AU"].shape == (4, 1, 3, 12)
    unc = ensemble_task_uncertainty(stack)
    assert (unc["EXPR"]["epistemic"] > 0).all()


def test_mc_dropout_context_needs_dropout():
    with pytest.raises(ValueError, match="no dropout module"):
        with C.mc_dropout(torch.nn.Linear(2, 2)):
            pass


def test_doctests():
    assert doctest.testmod(C).failed == 0
