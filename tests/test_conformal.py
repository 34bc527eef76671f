"""Split-conformal sets and intervals (emenet.conformal): hand-computed cases, coverage on unseen
synthetic videos over seeds, and agreement with MAPIE on the same scores."""
from __future__ import annotations

import numpy as np
import pytest

from emenet.conformal import scores as S
from emenet.conformal.regions import AbstainRule, SetMethod, abstain_flags, fit_thresholds, measure, predict_regions

# --- hand-computed cases -------------------------------------------------------------------------


def test_quantile_is_the_finite_sample_order_statistic():
    s = np.arange(1, 11) / 10  # 0.1 .. 1.0
    assert S.conformal_quantile(s, 0.9) == 1.0  # ceil(11 * 0.9) = 10th
    assert S.conformal_quantile(s, 0.8) == 0.9  # ceil(8.8) = 9th
    assert S.conformal_quantile(s[:5], 0.9) == np.inf  # ceil(6 * 0.9) = 6 > 5: no finite threshold
    with pytest.raises(ValueError):
        S.conformal_quantile(s, 1.0)


def test_aps_and_raps_scores_and_sets():
    p = np.array([[0.5, 0.3, 0.15, 0.05], [0.1, 0.2, 0.3, 0.4]])
    np.testing.assert_allclose(S.aps_scores(p, [2, 3]), [0.95, 0.4])
    np.testing.assert_allclose(S.aps_scores(p, [2, 3], u=[0.5, 1.0]), [0.95 - 0.075, 0.0])
    # RAPS: + lambda * max(0, rank - k): rank 3 with k 1 adds 2 * 0.1
    np.testing.assert_allclose(S.raps_scores(p, [2, 3], lam=0.1, k_reg=1), [1.15, 0.4])
    np.testing.assert_array_equal(S.aps_sets(p, 0.8), [[1, 1, 0, 0], [0, 0, 1, 1]])  # cumulative 0.5, 0.8 | 0.4, 0.7
    np.testing.assert_array_equal(S.aps_sets(p, 0.3), [[1, 0, 0, 0], [0, 0, 0, 1]])  # the top class is always in
    # regularised cumulative sums 0.5, 0.9 and 0.4, 0.8, 1.1: the penalty keeps the second row's second class out
    np.testing.assert_array_equal(S.raps_sets(p, 0.75, lam=0.1, k_reg=1), [[1, 0, 0, 0], [0, 0, 0, 1]])
    np.testing.assert_array_equal(S.aps_sets(p, 0.75), [[1, 0, 0, 0], [0, 0, 1, 1]])
    np.testing.assert_array_equal(S.aps_sets(p, np.inf), np.ones((2, 4)))
    # the set rule is the score rule: the true label is in the set when its score <= q, or it is the top class
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7), 300)
    y = rng.integers(0, 7, 300)
    for lam, k in ((0.0, 0), (0.05, 2)):
        score = S.raps_scores(probs, y, lam, k)
        for q in (0.3, 0.7, 0.95, 1.1):
            top = probs.argmax(1) == y
            np.testing.assert_array_equal(S.raps_sets(probs, q, lam, k)[np.arange(300), y], (score <= q + S.EPS) | top)


def test_lac_au_sets():
    p = np.array([0.9, 0.5, 0.05])
    np.testing.assert_allclose(S.lac_scores(p, [1, 0, 1]), [0.1, 0.5, 0.95])
    has0, has1 = S.lac_sets(p, 0.2)  # keep values with probability >= 0.8
    np.testing.assert_array_equal(has0, [False, False, True])
    np.testing.assert_array_equal(has1, [True, False, False])  # 0.5: empty set
    has0, has1 = S.lac_sets(p, 0.6)
    np.testing.assert_array_equal(has0 & has1, [False, True, False])


def test_bin_quantiles_of_the_histogram():
    p = np.zeros(20)
    p[10] = 1.0  # all mass in [0, 0.1]
    np.testing.assert_allclose(S.bin_quantiles(p, [0.0, 0.25, 0.5, 1.0]), [0.0, 0.025, 0.05, 0.1], atol=1e-12)
    np.testing.assert_allclose(S.bin_quantiles(np.full(20, 0.05), [0.05, 0.5, 0.9]), [-0.9, 0.0, 0.8], atol=1e-12)
    p = np.zeros((1, 2, 20))
    p[0, 1] = 0.05
    p[0, 0, [0, 19]] = 0.5  # half at each end: the median sits at the first bin's right edge
    assert S.bin_quantiles(p, [0.5])[0, 0, 0] == pytest.approx(-0.9)
    lo, hi = S.cqr_base_interval(np.full(20, 0.05), 0.9)
    assert (lo, hi) == (pytest.approx(-0.9), pytest.approx(0.9))  # 5% and 95% of the uniform on [-1, 1]
    np.testing.assert_allclose(S.cqr_scores([-0.5], [0.5], [0.7]), [0.2])
    np.testing.assert_allclose(S.cqr_interval([-0.5], [0.5], 0.7), ([-1.0], [1.0]))


def test_abstain_rule():
    probs = {"EXPR": np.array([[0.9, 0.1, 0, 0, 0, 0, 0], [0.3, 0.3, 0.3, 0.1, 0, 0, 0]])}
    r = predict_regions(probs, {"EXPR": 0.95}, 0.9)
    assert r.expr.sum(axis=1).tolist() == [1, 3]
    assert abstain_flags(r, AbstainRule()).get("abstain_EXPR").tolist() == [False, True]
    assert abstain_flags(r, AbstainRule(expr_max_set_size=3))["abstain_EXPR"].tolist() == [False, False]


# --- coverage on unseen synthetic videos ---------------------------------------------------------

def _videos(rng: np.random.Generator, n_videos: int, sharpness: float):
    """Frames of videos whose labels follow the model's own distribution tilted by a per-video
    shift (frames of one video are alike; videos are exchangeable). `sharpness` is how much the
    model knows: a better model has more peaked distributions, still calibrated across videos."""
    out = []
    for _ in range(n_videos):
        n = int(rng.integers(40, 120))
        logits = sharpness * (rng.normal(size=(1, 7)) + 0.5 * rng.normal(size=(n, 7)))
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        y = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
        au_p = 1 / (1 + np.exp(-sharpness * (rng.normal(size=(1, 12)) + 0.5 * rng.normal(size=(n, 12)))))
        au_y = (rng.random((n, 12)) < au_p).astype(int)
        au_y[rng.random((n, 12)) < 0.1] = -1  # some unannotated entries
        centre = np.clip(rng.normal(scale=0.5, size=(1, 2)) + 0.1 * rng.normal(size=(n, 2)), -0.95, 0.95)
        grid = np.linspace(-0.95, 0.95, 20)
        width = 0.6 / sharpness
        va_p = np.exp(-0.5 * ((grid[None, None, :] - centre[..., None]) / width) ** 2)
        va_p /= va_p.sum(-1, keepdims=True)
        bins = (va_p.cumsum(-1) > rng.random((n, 2, 1))).argmax(-1)  # a bin drawn from the distribution
        va_y = np.clip(S.VA_EDGES[bins] + 0.1 * rng.random((n, 2)), -1, 1)  # uniform inside it
        out.append(({"EXPR": p, "AU": au_p, "VA": va_p}, {"EXPR": y, "AU": au_y, "VA": va_y}))
    return out


def _join(videos):
    return ({t: np.concatenate([v[0][t] for v in videos]) for t in ("EXPR", "AU", "VA")},
            {t: np.concatenate([v[1][t] for v in videos]) for t in ("EXPR", "AU", "VA")})


@pytest.mark.parametrize("method", [SetMethod("aps"), SetMethod("raps", 0.02, 1)])
def test_coverage_on_unseen_videos_over_seeds(method):
    target, measured = 0.9, {k: [] for k in ("EXPR", "AU", "valence", "arousal")}
    for seed in range(8):
        rng = np.random.default_rng(seed)
        videos = _videos(rng, 60, sharpness=1.5)
        cal, test = _join(videos[:30]), _join(videos[30:])  # whole videos on each side
        thresholds = fit_thresholds(*cal, target, method)
        result = measure(*test, thresholds, target, method)
        for k in measured:
            measured[k].append(result[k]["coverage"])
    for k, values in measured.items():
        # the guarantee is marginal over calibration draws: the mean over seeds is within a few points,
        # each seed within a wider band (30 videos of correlated frames per side)
        assert abs(np.mean(values) - target) < 0.03, (k, values)
        assert min(values) > target - 0.08, (k, values)


def test_sets_shrink_as_the_model_improves():
    sizes = []
    for sharpness in (1.0, 3.0):  # a teacher, then a model that knows more (trained longer)
        rng = np.random.default_rng(7)
        videos = _videos(rng, 60, sharpness)
        cal, test = _join(videos[:30]), _join(videos[30:])
        result = measure(*test, fit_thresholds(*cal, 0.9), 0.9)
        sizes.append((result["EXPR"]["mean_set_size"], result["AU"]["mean_undecided"], result["valence"]["mean_width"]))
    assert all(better < worse for worse, better in zip(*sizes)), sizes


# --- agreement with MAPIE ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def mapie(require_extra):
    return require_extra("mapie", "test")


def _prefit_classifier(k: int):
    from sklearn.base import BaseEstimator, ClassifierMixin

    class ProbsAreFeatures(ClassifierMixin, BaseEstimator):
        """A fitted classifier whose predicted probabilities are its input: MAPIE sees our scores."""

        def fit(self, X, y):
            return self

        def predict_proba(self, X):
            return np.asarray(X)

        def predict(self, X):
            return np.asarray(X).argmax(1)

    clf = ProbsAreFeatures()
    clf.classes_ = np.arange(k)
    clf.n_features_in_ = k
    return clf


@pytest.mark.parametrize("seed", range(3))
def test_aps_sets_agree_with_mapie(mapie, seed):
    from mapie.classification import SplitConformalClassifier
    rng = np.random.default_rng(seed)
    (cal_p, cal_y), (test_p, _) = [(_join(v)[0]["EXPR"], _join(v)[1]["EXPR"]) for v in
                                   (_videos(rng, 20, 1.5), _videos(rng, 10, 1.5))]
    model = SplitConformalClassifier(_prefit_classifier(7), confidence_level=0.9, conformity_score="aps",
                                     prefit=True, random_state=seed)
    model.conformalize(cal_p, cal_y)
    _, sets = model.predict_set(test_p, conformity_score_params={"include_last_label": False})
    # MAPIE's APS score is randomized by its random state; the same uniform draws give the same scores
    u = np.random.RandomState(seed).uniform(size=len(cal_y))
    q = S.conformal_quantile(S.aps_scores(cal_p, cal_y, u=u), 0.9)
    assert q == pytest.approx(float(np.ravel(model._mapie_classifier.conformity_score_function_.quantiles_)[0]))
    np.testing.assert_array_equal(S.aps_sets(test_p, q), sets[:, :, 0])


@pytest.mark.parametrize("seed", range(3))
def test_au_lac_sets_agree_with_mapie(mapie, seed):
    from mapie.classification import SplitConformalClassifier
    rng = np.random.default_rng(seed)
    cal, test = _join(_videos(rng, 20, 1.5)), _join(_videos(rng, 10, 1.5))
    q = fit_thresholds({"AU": cal[0]["AU"]}, {"AU": cal[1]["AU"]}, 0.9)["AU"]
    r = predict_regions({"AU": test[0]["AU"]}, {"AU": q}, 0.9)
    for j in (0, 6, 11):
        ok = cal[1]["AU"][:, j] >= 0
        p = cal[0]["AU"][ok, j]
        model = SplitConformalClassifier(_prefit_classifier(2), confidence_level=0.9, conformity_score="lac",
                                         prefit=True)
        model.conformalize(np.stack([1 - p, p], 1), cal[1]["AU"][ok, j])
        _, sets = model.predict_set(np.stack([1 - test[0]["AU"][:, j], test[0]["AU"][:, j]], 1))
        np.testing.assert_array_equal(r.au_has0[:, j], sets[:, 0, 0])
        np.testing.assert_array_equal(r.au_has1[:, j], sets[:, 1, 0])


@pytest.mark.parametrize("seed", range(3))
def test_va_intervals_agree_with_mapie_cqr(mapie, seed):
    from sklearn.base import BaseEstimator, RegressorMixin

    from mapie.regression import ConformalizedQuantileRegressor

    class Column(RegressorMixin, BaseEstimator):
        """A fitted 'quantile regressor' reading our quantile from its input column."""

        def __init__(self, column: int = 0):
            self.column = column

        def fit(self, X, y):
            return self

        def predict(self, X):
            return np.asarray(X)[:, self.column]

    rng = np.random.default_rng(seed)
    cal, test = _join(_videos(rng, 20, 1.5)), _join(_videos(rng, 10, 1.5))
    thresholds = fit_thresholds({"VA": cal[0]["VA"]}, {"VA": cal[1]["VA"]}, 0.9)
    r = predict_regions({"VA": test[0]["VA"]}, thresholds, 0.9)
    for d in range(2):
        def features(probs):  # lower, upper, median of the bin distribution
            return S.bin_quantiles(probs[:, d], [0.05, 0.95, 0.5])
        estimators = []
        for column in range(3):
            est = Column(column)
            est.n_features_in_ = 3
            estimators.append(est)
        model = ConformalizedQuantileRegressor(estimators, confidence_level=0.9, prefit=True)
        model.conformalize(features(cal[0]["VA"]), cal[1]["VA"][:, d])
        _, intervals = model.predict_interval(features(test[0]["VA"]), symmetric_correction=True)
        np.testing.assert_allclose(np.clip(intervals[:, 0, 0], -1, 1), r.va_lo[:, d], atol=1e-9)
        np.testing.assert_allclose(np.clip(intervals[:, 1, 0], -1, 1), r.va_hi[:, d], atol=1e-9)
