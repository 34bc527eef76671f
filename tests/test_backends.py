"""Inference backends (emenet.fast) against eager fp32: random models, the golden checkpoint, streaming.

Tolerances (stated once, used below):
- fp32 paths (fused, compile, onnx): logits within 1e-5 of the golden file's (its README's bar
  for a faithful model), features within 1e-4 relative of eager on random models;
- int8: logits within 5e-3 of the golden file's (the golden logits are of order 0.1), and the
  accuracy gate of emenet.fast.int8 passed;
- bf16 (8-bit mantissa, relative rounding 2**-8 per operation): features within 5e-2 relative
  of eager on random models, golden logits within 5e-3, and the same accuracy gate passed.
"""
from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

import emenet
from emenet.errors import EMENetInputError
from emenet.fast import BACKENDS, available_backends, make_runner, resolve_backend
from emenet.fast.fold import fold_batch_norm
from emenet.data.synth_validation import synthetic_faces
from emenet.fast.int8 import GateResult, int8_gate
from emenet.fast.pool import WorkerPool
from emenet.fast.prelu import DepthwisePReLU, prelu_as_convolutions
from emenet.inference import Predictor
from model_helpers import perturb_batch_norms

FP32_GOLDEN_ATOL = 1e-5
INT8_GOLDEN_ATOL = 5e-3
BF16_GOLDEN_ATOL = 5e-3
BF16_FEATURE_RTOL = 5e-2
FP32_FEATURE_RTOL = 1e-4
TASKS = ("EXPR", "AU", "VA")


def _perturbed_model(seed: int) -> emenet.EMENet:
    """A random EMENet-V whose batch-norm statistics and affine parameters are far from the identity."""
    torch.manual_seed(seed)
    model = emenet.create_model("emenet_v")
    perturb_batch_norms(model, prelu_slopes=(0.0, 0.5))
    return model.eval()


@pytest.fixture(scope="module")
def models() -> list[emenet.EMENet]:
    return [_perturbed_model(0), _perturbed_model(1)]


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    return torch.rand(11, 3, 112, 112, generator=torch.Generator().manual_seed(0))  # 11: a micro-batch tail of 3


@pytest.fixture(scope="module")
def golden(reference_dir):
    ref = dict(np.load(reference_dir / "emenet_v_golden_io.npz"))
    model = emenet.load_checkpoint(reference_dir / "emenet_v_net_epoch_4.pth")
    return model, ref


def _golden_checks(runner, model, ref, atol: float, chunks: tuple[int, ...] = (1,) * 6) -> None:
    """Independent frames, then the frames as one stream fed in `chunks`, against the golden file
    (EMENet-VA's holds each frame's audio window too)."""
    frames = torch.from_numpy(ref["frames"])
    audio = torch.from_numpy(ref["audio"]) if "audio" in ref else None
    features = runner.encode(frames, audio)[0]
    with torch.inference_mode():
        logits, _ = model.forward_features(features[:, None])  # each frame a sequence of one
    for task in TASKS:
        np.testing.assert_allclose(logits[task][:, 0].numpy(), ref[f"independent_logits_{task}"], rtol=0, atol=atol)
    hidden, outs, start = [None], {t: [] for t in TASKS}, 0
    for n in chunks:  # streaming through Runner.forward (backbone + heads): each call continues the state
        [(step, new)] = runner.forward(frames[start:start + n], None if audio is None else audio[start:start + n],
                                       hidden=hidden)
        hidden, start = [new], start + n
        for task in TASKS:
            outs[task].append(step[task][0])
    for task in TASKS:
        np.testing.assert_allclose(torch.cat(outs[task]).numpy(), ref[f"stream_logits_{task}"], rtol=0, atol=atol)
        np.testing.assert_allclose(hidden[0][task].numpy(), ref[f"stream_final_hidden_{task}"], rtol=0, atol=atol)
    [(alone, _)] = runner.forward(frames, audio)  # no hidden: each frame a sequence of its own, (N, 1, C)
    for task in TASKS:
        np.testing.assert_allclose(alone[task][:, 0].numpy(), ref[f"independent_logits_{task}"], rtol=0, atol=atol)


# ------------------------------------------------------------------------------ pieces

def test_fold_batch_norm_matches_the_eval_backbone(models, frames):
    backbone = models[0].backbone
    folded = fold_batch_norm(backbone)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in backbone.modules())  # the original is untouched
    with torch.no_grad():
        ref, out = backbone(frames), folded(frames)
    assert ref.abs().max() > 1e-2  # the perturbed statistics matter: features are not ~0
    torch.testing.assert_close(out, ref, rtol=FP32_FEATURE_RTOL, atol=FP32_FEATURE_RTOL * float(ref.abs().max()))


def test_depthwise_prelu_equals_prelu_with_per_channel_slopes():
    torch.manual_seed(0)
    prelu = torch.nn.PReLU(6)
    with torch.no_grad():
        prelu.weight.copy_(torch.tensor([-0.5, 0.0, 0.1, 0.25, 1.0, 1.7]))  # every regime, each channel its own
    block = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), prelu)
    rewritten = prelu_as_convolutions(block)
    assert isinstance(rewritten[1], DepthwisePReLU) and isinstance(block[1], torch.nn.PReLU)  # original untouched
    x = torch.randn(4, 3, 9, 9)
    with torch.no_grad():
        y = block[0](x)
        expected = torch.where(y >= 0, y, prelu.weight.view(1, 6, 1, 1) * y)  # PReLU by its definition
        torch.testing.assert_close(rewritten(x), expected, rtol=1e-6, atol=1e-6)
    single = torch.nn.PReLU()  # one slope for all channels: left alone
    assert prelu_as_convolutions(torch.nn.Sequential(single))[0].__class__ is torch.nn.PReLU


def test_onnx_export_keeps_prelu_in_the_blocked_layout(models, require_extra):
    require_extra("onnxruntime", "onnx")
    import onnx

    from emenet.fast.onnx_backend import export_backbone
    ops = [{n.op_type for n in onnx.load_from_string(export_backbone(models[0].backbone, blocked_prelu=b)).graph.node}
           for b in (True, False)]
    assert "PRelu" not in ops[0] and "Conv" in ops[0]
    assert "PRelu" in ops[1]


def test_worker_pool_keeps_order_and_leaves_the_callers_threads_alone():
    before = torch.get_num_threads()
    with WorkerPool(2) as pool:
        assert pool.map(lambda x: (x, torch.get_num_threads(), torch.is_inference_mode_enabled()), [3, 1, 2]) == \
            [(3, 1, True), (1, 1, True), (2, 1, True)]
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="at least 1"):
        WorkerPool(0)


@pytest.mark.parametrize("backend", ["fused", "onnx"])
def test_backend_features_match_eager_on_random_models(backend, models, frames, require_extra):
    if backend == "onnx":
        require_extra("onnxruntime", "onnx")
    runner = make_runner(backend, models, "cpu", micro_batch=4, num_workers=2)
    try:
        out = runner.encode(frames)
    finally:
        runner.close()
    ref = make_runner("eager", models, "cpu").encode(frames)
    assert len(out) == len(models)
    for a, b in zip(out, ref):
        assert a.shape == (11, 512)
        torch.testing.assert_close(a, b, rtol=FP32_FEATURE_RTOL, atol=FP32_FEATURE_RTOL * float(b.abs().max()))
    assert not torch.allclose(ref[0], ref[1])  # two members, two different feature sets


@pytest.mark.parametrize("backend", ["eager", "fused", "onnx"])
def test_backend_matches_golden_logits_independent_and_streaming(backend, golden, require_extra):
    if backend == "onnx":
        require_extra("onnxruntime", "onnx")
    model, ref = golden
    runner = make_runner(backend, [model], "cpu", micro_batch=4)  # 6 frames: one full micro-batch and a tail
    try:
        _golden_checks(runner, model, ref, FP32_GOLDEN_ATOL, chunks=(1, 1, 1, 1, 1, 1))
        _golden_checks(runner, model, ref, FP32_GOLDEN_ATOL, chunks=(4, 2))
    finally:
        runner.close()


@pytest.mark.slow
def test_compile_backend_matches_golden_logits(golden):
    reason = emenet.fast.unavailable_reason("compile", torch.device("cpu"))
    if reason:
        pytest.fail(f"torch.compile should work where the project is built: {reason}")
    model, ref = golden
    runner = make_runner("compile", [model], "cpu", micro_batch=6)
    try:
        assert runner.setup_seconds > 0  # the compile time is measured
        _golden_checks(runner, model, ref, FP32_GOLDEN_ATOL, chunks=(3, 3))  # tails are padded: one graph
    finally:
        runner.close()


# -------------------------------------------------------------------------------- int8

def _logits(expr: np.ndarray, au: np.ndarray, va: np.ndarray) -> dict[str, torch.Tensor]:
    return {"EXPR": torch.from_numpy(expr), "AU": torch.from_numpy(au), "VA": torch.from_numpy(va)}


def _ccc(x: np.ndarray, y: np.ndarray) -> float:
    """CCC, population form, written out independently of emenet.evaluation.metrics."""
    cov = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def test_int8_gate_counts_frames_whose_decisions_change():
    rng = np.random.default_rng(0)
    n = 100
    expr = rng.normal(size=(n, 7)) * 3
    au = rng.normal(size=(n, 12)) * 3
    va = rng.normal(size=(n, 40))
    labels = rng.uniform(-1, 1, size=(n, 2))
    same = int8_gate(_logits(expr, au, va), _logits(expr.copy(), au.copy(), va.copy()), labels)
    assert same.agreement == 1.0 and same.passed and same.ccc_drop == {"valence": 0.0, "arousal": 0.0}

    flipped = au.copy()
    flipped[0, 3] = -flipped[0, 3]  # one AU decision of frame 0 changes
    other = expr.copy()
    other[1] = expr[1, ::-1]  # frame 1's expression changes (its argmax moves)
    assert np.argmax(other[1]) != np.argmax(expr[1])
    gate = int8_gate(_logits(expr, au, va), _logits(other, flipped, va), labels)
    assert gate.agreement == pytest.approx(0.98) and not gate.passed  # 2 frames of 100 < 99%
    one = int8_gate(_logits(expr, au, va), _logits(expr, flipped, va), labels)
    assert one.agreement == pytest.approx(0.99) and one.passed  # exactly the 99% bar


def test_int8_gate_ccc_drop_matches_an_independent_ccc():
    rng = np.random.default_rng(1)
    n = 200
    centres = np.linspace(-1, 1, 20)
    target = rng.uniform(-0.9, 0.9, size=(n, 2))
    # VA logits that put their mass near the target: the reference is accurate
    va = -((target[:, :, None] - centres) ** 2) * 50.0  # (n, 2, 20)
    noisy = va + rng.normal(scale=8.0, size=va.shape)  # a degraded candidate
    expr, au = rng.normal(size=(n, 7)), rng.normal(size=(n, 12))
    gate = int8_gate(_logits(expr, au, va.reshape(n, 40)), _logits(expr, au, noisy.reshape(n, 40)), target)

    def expectation(logits: np.ndarray) -> np.ndarray:
        p = np.exp(logits - logits.max(-1, keepdims=True))
        return (p / p.sum(-1, keepdims=True) * centres).sum(-1)  # (n, 2)
    ref, new = expectation(va), expectation(noisy)
    for j, name in enumerate(("valence", "arousal")):
        expected = _ccc(ref[:, j], target[:, j]) - _ccc(new[:, j], target[:, j])
        assert gate.ccc_drop[name] == pytest.approx(expected, abs=1e-9)
    assert max(gate.ccc_drop.values()) > 0.01 and not gate.passed
    assert GateResult(10, 1.0, {"valence": 0.01, "arousal": -0.2}).passed  # the drop bar is inclusive


def test_synthetic_faces_are_deterministic_and_labelled():
    a, b = synthetic_faces(5, seed=3), synthetic_faces(5, seed=3)
    np.testing.assert_array_equal(a.crops, b.crops)
    assert a.crops.dtype == np.uint8 and a.crops.shape == (5, 112, 112, 3)
    assert np.all(np.abs(a.va) <= 1) and a.crops.std() > 10
    assert not np.array_equal(a.crops, synthetic_faces(5, seed=4).crops)


@pytest.mark.slow
def test_int8_backend_passes_its_gate_on_the_golden_checkpoint(golden, require_extra, tmp_path, monkeypatch):
    require_extra("onnxruntime", "onnx")
    import emenet.fast.int8 as int8
    model, ref = golden
    calls = []
    gate = int8.int8_gate
    monkeypatch.setattr(int8, "int8_gate", lambda *a, **k: calls.append(1) or gate(*a, **k))
    verdicts = []
    for attempt in range(2):  # the second runner reads the quantized graph and the gate's verdict from the cache
        runner = make_runner("int8", [model], "cpu", validation_frames=96, cache_dir=tmp_path)
        try:
            assert [g.passed for g in runner.gates] == [True] and len(calls) == 1
            assert runner.gates[0].num_frames == 96
            verdicts.append(runner.gates)
            _golden_checks(runner, model, ref, INT8_GOLDEN_ATOL, chunks=(6,))
        finally:
            runner.close()
        assert len(list(tmp_path.glob("backbone-int8-*.onnx"))) == 1 and len(list(tmp_path.glob("*.onnx"))) == 2
        assert len(list(tmp_path.glob("gate-*.json"))) == 1
    assert verdicts[0] == verdicts[1]


@pytest.mark.slow
def test_int8_backend_refuses_a_quantization_that_fails_the_gate(require_extra):
    """Calibrating on black frames gives activation ranges far too narrow for faces: the gate must refuse."""
    require_extra("onnxruntime", "onnx")
    model = _perturbed_model(2)
    with torch.no_grad():
        for head in model.tmodels:
            head.decoder.weight.mul_(50.0)  # decisions that a coarse backbone changes
    black = np.zeros((8, 3, 112, 112), np.float32)
    with pytest.raises(EMENetInputError, match="fails its accuracy gate"):
        make_runner("int8", [model], "cpu", calibration=black, validation_frames=96)


# -------------------------------------------------------------------------------- bf16

def test_bf16_is_offered_only_where_the_cpu_has_native_bf16():
    from emenet.fast.bf16 import bf16_unavailable_reason, native_bf16_flags
    plain = frozenset({"avx2", "avx512f", "avx512_vnni"})
    assert native_bf16_flags(plain) == []
    assert "no native bf16" in bf16_unavailable_reason("cpu", plain)
    assert native_bf16_flags(plain | {"amx_bf16", "amx_tile"}) == ["amx_bf16"]
    assert "CPU only" in bf16_unavailable_reason("cuda", plain | {"amx_bf16"})
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        assert bf16_unavailable_reason("cpu", plain | {"avx512_bf16"}) is None


def _require_bf16() -> None:
    reason = emenet.fast.unavailable_reason("bf16", torch.device("cpu"))
    if reason:
        pytest.skip(f"bf16 backend: {reason}")


def test_auto_never_picks_a_path_that_changes_the_numbers(models):
    assert resolve_backend("auto", models, "cpu") in ("onnx", "fused")


class _NoisyRunner:
    """A stand-in runner whose features are the eager ones plus large noise: decisions change."""

    def __init__(self, models, scale: float):
        self.models, self.scale, self.closed, self.calls = models, scale, False, 0

    def gate_identity(self, member: int) -> dict:
        return {"backend": "noisy", "scale": self.scale}

    def encode(self, frames):
        self.calls += 1  # one call per run of the gate
        g = torch.Generator().manual_seed(0)
        with torch.inference_mode():
            ref = make_runner("eager", self.models, "cpu").encode(frames)
        return [f + self.scale * float(f.abs().max()) * torch.randn(f.shape, generator=g) for f in ref]

    def close(self):
        self.closed = True


def test_member_gates_pass_exact_features_and_refuse_noisy_ones(models):
    from emenet.fast.runners import check_member_gates
    exact = _NoisyRunner(models[:1], 0.0)
    [gate] = check_member_gates(exact, 16, "test path")
    assert gate.passed and gate.agreement == 1.0 and gate.num_frames == 16 and not exact.closed
    noisy = _NoisyRunner(models[:1], 10.0)
    with pytest.raises(EMENetInputError, match="test path of member 0 fails its accuracy gate"):
        check_member_gates(noisy, 16, "test path")
    assert noisy.closed


def test_gate_verdicts_are_cached_and_rerun_when_what_decides_them_changes(models, tmp_path, caplog):
    import copy
    import json

    from emenet.fast.runners import check_member_gates
    caplog.set_level("INFO", logger="emenet")
    FACES = 4  # validation faces: a few are enough, the cache does not depend on how many
    runner = _NoisyRunner(models, 0.0)
    first = check_member_gates(runner, FACES, "test path", tmp_path)
    files = sorted(tmp_path.glob("gate-*.json"))
    assert runner.calls == 1 and len(files) == 2  # one verdict per member
    caplog.clear()
    assert check_member_gates(runner, FACES, "test path", tmp_path) == first and runner.calls == 1  # not rerun
    assert "cached verdict was used for member(s) [0, 1]" in caplog.text and "checking" not in caplog.text

    check_member_gates(runner, FACES, "test path", tmp_path, min_agreement=0.95)  # another tolerance: runs again
    assert runner.calls == 2
    changed = copy.deepcopy(models[1])
    with torch.no_grad():
        changed.tmodels[0].decoder.bias.add_(1e-3)  # another checkpoint for member 1 only
    other = _NoisyRunner([models[0], changed], 0.0)
    check_member_gates(other, FACES, "test path", tmp_path)
    assert other.calls == 1 and len(list(tmp_path.glob("gate-*.json"))) == 5

    files[0].write_text("{not json")  # a corrupt file is ignored with a log line and rewritten
    stored = json.loads(files[1].read_text())
    stored["key"]["min_agreement"] = 0.5  # a file whose key does not match its name
    files[1].write_text(json.dumps(stored))
    caplog.clear()
    fresh = _NoisyRunner(models, 0.0)
    assert check_member_gates(fresh, FACES, "test path", tmp_path) == first and fresh.calls == 1
    assert caplog.text.count("ignoring the cached accuracy gate verdict") == 2
    assert [json.loads(f.read_text())["result"]["passed"] for f in files] == [True, True]

    noisy = _NoisyRunner(models[:1], 10.0)  # a failing verdict is kept too: the second refusal costs no run
    for calls in (1, 1):
        with pytest.raises(EMENetInputError, match="member 0 fails its accuracy gate"):
            check_member_gates(noisy, FACES, "test path", tmp_path)
        assert noisy.calls == calls and noisy.closed


@pytest.mark.slow
def test_bf16_backend_features_and_golden_logits(models, frames, golden):
    _require_bf16()
    runner = make_runner("bf16", models, "cpu", micro_batch=4, num_workers=2, validation_frames=32)
    try:
        assert [g.passed for g in runner.gates] == [True, True]
        out = runner.encode(frames)
        assert all(f.dtype == torch.float32 for f in out)
    finally:
        runner.close()
    ref = make_runner("eager", models, "cpu").encode(frames)
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=BF16_FEATURE_RTOL * float(b.abs().max()))
        assert not torch.equal(a, b)  # bf16 really ran: the numbers are rounded
    model, gold = golden
    runner = make_runner("bf16", [model], "cpu", micro_batch=4, validation_frames=32)
    try:
        _golden_checks(runner, model, gold, BF16_GOLDEN_ATOL, chunks=(1, 1, 1, 1, 1, 1))
        _golden_checks(runner, model, gold, BF16_GOLDEN_ATOL, chunks=(4, 2))
    finally:
        runner.close()


def test_bf16_backend_refuses_emenet_va_and_non_cpu_devices():
    va = emenet.create_model("emenet_va").eval()
    with pytest.raises(EMENetInputError, match="bf16 backend's accuracy gate is for EMENet-V"):
        make_runner("bf16", [va], "cpu")
    with pytest.raises(EMENetInputError, match="bf16 backend is unavailable"):
        make_runner("bf16", [emenet.create_model("emenet_v").eval()], "meta")


# ---------------------------------------------------------------------- the Predictor

@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    return [emenet.save_checkpoint(out / f"m{i}.pth", _perturbed_model(10 + i), epoch=1) for i in range(2)]


def test_predictor_auto_uses_onnx_on_the_cpu_and_agrees_with_eager(checkpoints, require_extra):
    require_extra("onnxruntime", "onnx")
    crops = np.random.default_rng(0).integers(0, 256, size=(13, 112, 112, 3), dtype=np.uint8)
    fast = Predictor(checkpoints, batch_size=5)
    eager = Predictor(checkpoints, batch_size=5, backend="eager")
    assert fast.backend == "onnx" and eager.backend == "eager" and "backend='onnx'" in repr(fast)
    (a, sa), (b, sb) = fast.predict_frames(crops), eager.predict_frames(crops)
    np.testing.assert_allclose(a.va, b.va, atol=1e-5)
    np.testing.assert_allclose(a.au_probs, b.au_probs, atol=1e-5)
    np.testing.assert_allclose(a.expr_probs, b.expr_probs, atol=1e-5)
    for ha, hb in zip(sa.hidden, sb.hidden):
        for task in ha:
            torch.testing.assert_close(ha[task], hb[task], atol=1e-5, rtol=0)
    c = fast.predict_independent(crops)
    np.testing.assert_allclose(c.va, eager.predict_independent(crops).va, atol=1e-5)
    fast.close()


def test_auto_falls_back_to_fused_where_onnx_cannot_run(models):
    assert resolve_backend("auto", models, "cuda") == "fused"  # ONNX Runtime's CPU provider only


def test_exported_graphs_are_cached_by_weights(models, tmp_path, require_extra):
    require_extra("onnxruntime", "onnx")
    from emenet.fast.onnx_backend import backbone_key, cached_export
    first = cached_export(models[0].backbone, tmp_path)
    files = sorted(tmp_path.glob("backbone-*.onnx"))
    assert len(files) == 1 and files[0].read_bytes() == first
    files[0].write_bytes(b"marker")  # a second call must read the cache, not export again
    assert cached_export(models[0].backbone, tmp_path) == b"marker"
    assert backbone_key(models[0].backbone) != backbone_key(models[1].backbone)  # other weights, other graph
    assert backbone_key(models[0].backbone) != backbone_key(models[0].backbone, blocked_prelu=False)
    runner = make_runner("onnx", models[:1], "cpu", cache_dir=tmp_path / "runner")
    runner.close()
    assert len(list((tmp_path / "runner").glob("backbone-*.onnx"))) == 1


def test_unknown_or_unavailable_backend_is_one_line_error(checkpoints):
    with pytest.raises(EMENetInputError, match="unknown backend 'fastest'"):
        Predictor(checkpoints, backend="fastest")
    with pytest.raises(EMENetInputError, match="CPU"):
        resolve_backend("onnx", [], "meta")
    assert set(available_backends("cpu")) <= set(BACKENDS) and "fused" in available_backends("cpu")


@pytest.mark.parametrize("backend", ["fused", "onnx"])
def test_emenet_va_golden_logits_on_the_fast_backends(backend, reference_dir, require_extra):
    """The visual branch on the fast path, the audio branch eager beside it: the original's outputs."""
    if backend == "onnx":
        require_extra("onnxruntime", "onnx")
    model = emenet.load_checkpoint(reference_dir / "emenet_va_net_epoch_3.pth")
    ref = dict(np.load(reference_dir / "emenet_va_golden_io.npz"))
    runner = make_runner(backend, [model], "cpu", micro_batch=4)
    try:
        _golden_checks(runner, model, ref, FP32_GOLDEN_ATOL, chunks=(4, 2))
        with pytest.raises(EMENetInputError, match="audio"):
            runner.encode(torch.from_numpy(ref["frames"]))
    finally:
        runner.close()


def test_auto_picks_a_fast_path_for_emenet_va_too():
    va = emenet.create_model("emenet_va").eval()
    assert resolve_backend("auto", [va], "cpu") in ("onnx", "fused")
    with pytest.raises(EMENetInputError, match="int8 backend's accuracy gate is for EMENet-V"):
        make_runner("int8", [va], "cpu")
    with pytest.raises(EMENetInputError, match="audio"):
        make_runner("eager", [va], "cpu").encode(torch.rand(2, 3, 112, 112))


def test_backend_flag_reaches_the_predictor(checkpoints):
    from emenet.cli.predict import add_predictor_arguments, predictor_from_args
    parser = argparse.ArgumentParser()
    add_predictor_arguments(parser)
    args = parser.parse_args(["--checkpoint", str(checkpoints[0]), "--backend", "eager"])
    assert predictor_from_args(args).backend == "eager"
    assert parser.parse_args(["--checkpoint", "x"]).backend == "auto"
    with pytest.raises(SystemExit):
        parser.parse_args(["--checkpoint", "x", "--backend", "fastest"])


def test_predictor_with_an_emenet_va_member_hears_the_audio(tmp_path):
    torch.manual_seed(5)
    model = emenet.create_model("emenet_va").eval()
    path = emenet.save_checkpoint(tmp_path / "va.pth", model, epoch=1)
    predictor = Predictor([path], batch_size=3)
    assert predictor.backend in ("onnx", "fused")  # the visual branch on the fast path
    assert (predictor.audio_window, predictor.audio_sample_rate) == (model.config.audio_window, model.config.sample_rate)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(5, 112, 112, 3), dtype=np.uint8)
    audio = (rng.standard_normal((5, predictor.audio_window)) * 0.1).astype(np.float32)
    preds, state = predictor.predict_frames(crops, audio=audio)  # chunks of 3 + 2 frames, one sequence
    frames = torch.from_numpy(crops).permute(0, 3, 1, 2).float()[None] / 255.0
    with torch.no_grad():
        ref, hidden = model(frames, torch.from_numpy(audio)[None])
    centres = torch.linspace(-1, 1, 20, dtype=torch.float64)
    va = (torch.softmax(ref["VA"][0].double().view(5, 2, 20), -1) * centres).sum(-1).numpy()
    np.testing.assert_allclose(preds.va, va, atol=1e-5)
    torch.testing.assert_close(state.hidden[0]["AU"], hidden["AU"], atol=1e-5, rtol=0)
    with pytest.raises(EMENetInputError, match="audio"):
        predictor.predict_frames(crops)
    with pytest.raises(EMENetInputError, match="shape"):
        predictor.predict_frames(crops, audio=audio[:4])
    assert Predictor([path], backend="eager").predict_independent(crops[:1], audio=audio[:1]).va.shape == (1, 2)
