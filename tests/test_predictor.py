"""The Predictor: decoding against an independent numpy reference, ensembles, streaming, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import expit, softmax
from scipy.stats import entropy as scipy_entropy

import emenet
from emenet.errors import EMENetInputError
from emenet.inference import FramePredictions, Predictor
from emenet.tasks import AU_NAMES, EXPR_NAMES

CENTRES = np.linspace(-1.0, 1.0, 20)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Small random-weight checkpoints: two different 3-task models, one with the FA head, one AU+VA."""
    out = tmp_path_factory.mktemp("ckpt")
    paths = {}
    for name, (arch, seed, overrides) in {"a": ("emenet_v", 0, {}), "b": ("emenet_v", 1, {}),
                                          "aux": ("emenet_v_aux", 2, {}),
                                          "au_va": ("emenet_v", 3, {"tasks": ("AU", "VA")})}.items():
        torch.manual_seed(seed)
        model = emenet.create_model(arch, **overrides)
        with torch.no_grad():  # spread the outputs so that decisions and entropies differ between frames
            for head in model.tmodels:
                head.decoder.weight.mul_(20.0)
        paths[name] = emenet.save_checkpoint(out / f"{name}.pth", model, epoch=1)
    return paths


@pytest.fixture(scope="module")
def crops():
    return np.random.default_rng(0).integers(0, 256, size=(11, 112, 112, 3), dtype=np.uint8)


def _reference_logits(path, crops: np.ndarray) -> dict[str, np.ndarray]:
    """The model run by hand on the crops as one sequence: RGB in [0, 1], (1, N, 3, 112, 112)."""
    model = emenet.load_checkpoint(path)
    frames = torch.from_numpy(crops.astype(np.float32) / 255.0).permute(0, 3, 1, 2)[None]
    with torch.no_grad():
        logits, _ = model(frames)
    return {t: v[0].double().numpy() for t, v in logits.items()}


def _norm_entropy(p: np.ndarray) -> np.ndarray:
    return scipy_entropy(p, axis=-1) / np.log(p.shape[-1])


def _bernoulli_entropy(p: np.ndarray) -> np.ndarray:
    return _norm_entropy(np.stack([p, 1 - p], axis=-1))


def test_single_model_matches_manual_decoding(checkpoints, crops):
    preds, state = Predictor([checkpoints["a"]]).predict_frames(crops)
    ref = _reference_logits(checkpoints["a"], crops)
    au, expr = expit(ref["AU"]), softmax(ref["EXPR"], axis=-1)
    va = softmax(ref["VA"].reshape(-1, 2, 20), axis=-1)
    assert len(preds) == len(crops) and state.frames_seen == len(crops)
    np.testing.assert_allclose(preds.au_probs, au, atol=1e-5)
    np.testing.assert_array_equal(preds.au, (au > 0.5).astype(int))
    np.testing.assert_allclose(preds.expr_probs, expr, atol=1e-5)
    np.testing.assert_array_equal(preds.expr, expr.argmax(-1))
    np.testing.assert_allclose(preds.va_probs, va, atol=1e-5)
    np.testing.assert_allclose(preds.va, (va * CENTRES).sum(-1), atol=1e-5)
    assert len(set(preds.expr.tolist())) > 1 and 0 < preds.au.mean() < 1  # the check is not vacuous
    # one model: its uncertainty is aleatoric; total is the same number, no epistemic part
    for task, expected in (("AU", _bernoulli_entropy(au)), ("EXPR", _norm_entropy(expr)), ("VA", _norm_entropy(va))):
        u = preds.uncertainty[task]
        np.testing.assert_allclose(u.aleatoric, expected, atol=1e-5)
        np.testing.assert_array_equal(u.total, u.aleatoric)
        assert u.epistemic is None
    assert preds.landmarks is None and not preds.is_ensemble


def test_ensemble_merges_mean_probabilities_and_splits_uncertainty(checkpoints, crops):
    preds, _ = Predictor([checkpoints["a"], checkpoints["b"]]).predict_frames(crops)
    refs = [_reference_logits(checkpoints[k], crops) for k in ("a", "b")]
    au = np.stack([expit(r["AU"]) for r in refs])  # (M, N, 12)
    expr = np.stack([softmax(r["EXPR"], -1) for r in refs])
    va = np.stack([softmax(r["VA"].reshape(-1, 2, 20), -1) for r in refs])
    np.testing.assert_allclose(preds.au_probs, au.mean(0), atol=1e-5)
    np.testing.assert_array_equal(preds.au, (au.mean(0) > 0.5).astype(int))
    np.testing.assert_array_equal(preds.expr, expr.mean(0).argmax(-1))
    # VA: the expectation of the mean distribution is the mean of the members' expectations
    np.testing.assert_allclose(preds.va, ((va * CENTRES).sum(-1)).mean(0), atol=1e-5)
    for task, members, h in (("AU", au, _bernoulli_entropy), ("EXPR", expr, _norm_entropy), ("VA", va, _norm_entropy)):
        u = preds.uncertainty[task]
        np.testing.assert_allclose(u.total, h(members.mean(0)), atol=1e-5)
        np.testing.assert_allclose(u.aleatoric, h(members).mean(0), atol=1e-5)
        np.testing.assert_allclose(u.total, u.aleatoric + u.epistemic, atol=1e-6)
        assert np.all(u.epistemic >= -1e-6)
        assert u.epistemic.max() > 1e-3  # two different models do disagree somewhere
    assert preds.is_ensemble and preds.num_models == 2


def test_identical_members_have_no_epistemic_uncertainty(checkpoints, crops):
    single, _ = Predictor([checkpoints["a"]]).predict_frames(crops)
    twice, _ = Predictor([checkpoints["a"], checkpoints["a"]]).predict_frames(crops)
    for task in ("AU", "EXPR", "VA"):
        np.testing.assert_allclose(twice.uncertainty[task].epistemic, 0.0, atol=1e-6)
        np.testing.assert_allclose(twice.uncertainty[task].total, single.uncertainty[task].total, atol=1e-6)
    np.testing.assert_allclose(twice.va, single.va, atol=1e-6)


def test_streaming_in_chunks_equals_one_shot(checkpoints, crops):
    crops = crops[:7]
    predictor = Predictor([checkpoints["a"], checkpoints["aux"]], batch_size=64)
    whole, _ = predictor.predict_frames(crops)
    predictor.batch_size = 3  # the backbone in batches of 3 frames inside one call
    small_batches, _ = predictor.predict_frames(crops)
    predictor.batch_size = 64
    state, parts = None, []
    for lo, hi in ((0, 4), (4, 5), (5, 7)):  # uneven chunks, carrying the hidden state
        part, state = predictor.predict_frames(crops[lo:hi], state)
        parts.append(part)
    chunked = FramePredictions.concatenate(parts)
    stream = predictor.stream()
    one_by_one = FramePredictions.concatenate([stream(crop) for crop in crops])  # a live demo: one frame per call
    for other in (small_batches, chunked, one_by_one):
        for field in ("au_probs", "expr_probs", "va_probs", "va", "landmarks"):
            np.testing.assert_allclose(getattr(other, field), getattr(whole, field), atol=1e-5)
        np.testing.assert_allclose(other.uncertainty["VA"].epistemic, whole.uncertainty["VA"].epistemic, atol=1e-5)
    # a fresh state restarts the sequence: the second chunk alone differs from its streamed version
    alone, _ = predictor.predict_frames(crops[4:5])
    assert not np.allclose(alone.va_probs, whole.va_probs[4:5], atol=1e-4)
    stream.reset()
    np.testing.assert_allclose(stream(crops[0]).va, whole.va[:1], atol=1e-5)


def test_independent_frames_are_sequences_of_one(checkpoints, crops):
    predictor = Predictor([checkpoints["a"]])
    independent = predictor.predict_independent(crops[:4])
    for i in range(4):
        alone, _ = predictor.predict_frames(crops[i:i + 1])
        np.testing.assert_allclose(independent.va_probs[i], alone.va_probs[0], atol=1e-5)


def test_landmarks_are_the_fa_head_as_xy_pairs(checkpoints, crops, reference_dir):
    # the golden reference checkpoint in the original format, with the auxiliary head
    path = reference_dir / "emenet_v_aux_net_epoch_4.pth"
    preds, _ = Predictor([path]).predict_frames(crops[:3])
    fa = _reference_logits(path, crops[:3])["FA"]  # (3, 136): x0, y0, x1, y1, ...
    assert preds.landmarks.shape == (3, 68, 2)
    np.testing.assert_allclose(preds.landmarks[:, 5, 0], fa[:, 10], atol=1e-5)
    np.testing.assert_allclose(preds.landmarks[:, 5, 1], fa[:, 11], atol=1e-5)
    # members without the FA head still ensemble with one that has it
    mixed, _ = Predictor([checkpoints["a"], path]).predict_frames(crops[:3])
    np.testing.assert_allclose(mixed.landmarks, preds.landmarks, atol=1e-5)


def test_dataframe_columns_and_json(checkpoints, crops):
    single, _ = Predictor([checkpoints["aux"]]).predict_frames(crops[:5])
    df = single.to_dataframe()
    assert len(df) == 5
    for name in AU_NAMES:
        assert {f"{name}_prob", name, f"{name}_uncertainty"} <= set(df.columns)
    assert {f"{n}_prob" for n in EXPR_NAMES} <= set(df.columns)
    assert {"expression", "expression_name", "valence", "arousal", "valence_uncertainty", "arousal_bin19_prob",
            "landmark67_y"} <= set(df.columns)
    assert not any(c.endswith("_epistemic") for c in df.columns)
    assert df["expression_name"].tolist() == [EXPR_NAMES[k] for k in single.expr]
    ensemble, _ = Predictor([checkpoints["a"], checkpoints["b"]]).predict_frames(crops[:5])
    cols = set(ensemble.to_dataframe().columns)
    assert {"AU12_aleatoric", "AU12_epistemic", "expression_epistemic", "arousal_aleatoric"} <= cols
    d = ensemble.frame_dict(2)
    assert d["EXPR"]["name"] == EXPR_NAMES[ensemble.expr[2]]
    assert set(d["AU"]["AU1"]["uncertainty"]) == {"total", "aleatoric", "epistemic"}
    assert len(d["VA"]["valence"]["bin_probs"]) == 20


def test_models_without_a_task_leave_it_out(checkpoints, crops):
    preds, _ = Predictor([checkpoints["au_va"]]).predict_frames(crops[:2])
    assert preds.tasks == ("AU", "VA") and preds.expr is None
    assert "expression" not in preds.to_dataframe().columns


def test_take_and_concatenate_round_trip(checkpoints, crops):
    preds, _ = Predictor([checkpoints["a"], checkpoints["b"]]).predict_frames(crops)
    back = FramePredictions.concatenate([preds.take(slice(0, 4)), preds.take(np.arange(4, len(crops)))])
    np.testing.assert_array_equal(back.va_probs, preds.va_probs)
    np.testing.assert_array_equal(back.uncertainty["AU"].epistemic, preds.uncertainty["AU"].epistemic)
    filled = preds.take([0, 0, 1])
    assert len(filled) == 3 and filled.expr[1] == preds.expr[0]


def test_tasks_mismatch_is_one_line(checkpoints):
    with pytest.raises(EMENetInputError, match=r"predicts tasks \['AU', 'VA'\].*same tasks") as info:
        Predictor([checkpoints["a"], checkpoints["au_va"]])
    assert "\n" not in str(info.value) and "au_va.pth" in str(info.value)


def test_missing_checkpoint_and_bad_arguments(checkpoints, tmp_path, crops):
    with pytest.raises(EMENetInputError, match="checkpoint not found"):
        Predictor([checkpoints["a"], tmp_path / "nope.pth"])
    with pytest.raises(EMENetInputError, match=r"net_epoch_4_teacher\.pth: checkpoint not found"):
        Predictor.from_names(["teacher"], [4], tmp_path)
    with pytest.raises(EMENetInputError, match="2 names but 3 epochs"):
        Predictor.from_names(["x", "y"], [1, 2, 3], tmp_path)
    with pytest.raises(EMENetInputError, match="no checkpoint"):
        Predictor([])
    predictor = Predictor([checkpoints["a"]])
    with pytest.raises(EMENetInputError, match=r"\(N, 112, 112, 3\) uint8"):
        predictor.predict_frames(crops.astype(np.float32))
    with pytest.raises(EMENetInputError, match=r"\(N, 112, 112, 3\) uint8"):
        predictor.predict_frames(crops[:, :100])
    assert len(predictor.predict_frames(crops[:0])[0]) == 0


def test_docstring_examples():
    import doctest

    import emenet.face.align
    import emenet.face.tracking
    import emenet.inference.predictor
    import emenet.video.predict
    for module in (emenet.face.align, emenet.face.tracking, emenet.video.predict):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0
    # emenet.inference.predictor's examples need checkpoints and crops, so all of them are +SKIP
    # (doctest would attempt none): check that what they call exists instead
    assert doctest.testmod(emenet.inference.predictor).attempted == 0
    from emenet.inference.predictor import FramePredictions, Predictor
    for name in ("predict_frames", "stream", "close"):
        assert callable(getattr(Predictor, name)), name
    assert callable(FramePredictions.to_dataframe)


def test_from_names_uses_the_original_layout(checkpoints, tmp_path):
    model = emenet.load_checkpoint(checkpoints["a"])
    for name, epoch in (("t0", 4), ("t1", 6)):
        emenet.save_checkpoint(tmp_path / name / f"net_epoch_{epoch}_{name}.pth", model, epoch)
    predictor = Predictor.from_names(["t0", "t1"], [4, 6], tmp_path)
    assert predictor.num_models == 2 and predictor.tasks == ("EXPR", "AU", "VA")
