"""The benchmark suite runs end to end and writes its report (timings are not tested: numbers vary)."""
from __future__ import annotations

import json

import pytest

from emenet.bench.measure import Timing, machine_slug, time_calls
from emenet.bench.report import evaluate_targets, render_markdown
from emenet.bench.suite import SuiteConfig, plan
from emenet.cli import main


def test_time_calls_counts_warmup_and_repetitions():
    calls = []
    timing = time_calls(lambda: calls.append(1), warmup=2, repeat=3)
    assert len(calls) == 5 and len(timing.wall) == 3 and len(timing.cpu) == 3
    d = Timing(wall=[1.0, 3.0, 2.0], cpu=[2.0, 2.0, 4.0]).to_dict(frames_per_call=10)
    assert d["median_s"] == 2.0 and d["frames_per_s"] == 5.0 and d["cpu_s_per_frame"] == 0.2


def test_peak_memory_sees_an_allocation():
    """In a fresh process: a long-lived one (the test session) may serve the 64 MiB from pages it
    already holds, which raises no peak."""
    import subprocess
    import sys
    code = ("import json, numpy as np; from emenet.bench.measure import measure_memory; "
            "_, small = measure_memory(lambda: None); "
            "_, big = measure_memory(lambda: np.ones(64 * 2 ** 20 // 8).sum()); "  # 64 MiB touched
            "print(json.dumps([small, big]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    small, big = json.loads(out.stdout.strip().splitlines()[-1])
    assert big["peak_rss_mb"] >= small["peak_rss_mb"] + 48 or big["memory_method"].startswith("ru_maxrss")


def test_machine_slug_is_a_file_name():
    assert machine_slug({"cpu": "AMD EPYC 7B13 64-Core Processor", "usable_cpus": 2, "gpu": None}) == "amd-epyc-7b13-2cpu"
    assert machine_slug({"cpu": "Intel(R) Xeon(R) CPU @ 2.20GHz", "usable_cpus": 4, "gpu": "NVIDIA H100 80GB HBM3"}) \
        == "intel-xeon-4cpu-nvidia-h100-80gb"


def test_plan_has_a_baseline_for_every_group(tmp_path):
    measurements = plan(SuiteConfig(), tmp_path / "v.mp4", tmp_path)
    ids = {m.id for m in measurements}
    for group in ("inference/1", "inference/5", "video/1", "video/5", "train/teacher", "train/student"):
        assert f"{group}/baseline" in ids
    assert {"inference/1/fused", "inference/1/int8", "inference/5/onnx", "train/loader", "long_video",
            "train/student/fast_passive"} <= ids
    assert {"video/1/int8", "video/5/int8", "cold_start/5/int8"} <= ids  # int8 end to end beside the default path
    assert "profile/onnx_int8" in ids
    assert next(m for m in measurements if m.id == "video/5/int8").spec["backend"] == "int8"
    passive = next(m for m in measurements if m.id == "train/teacher/fast_passive")
    assert passive.spec["env"] == {"OMP_WAIT_POLICY": "PASSIVE"} and passive.spec["speed"] == "fast"
    assert not any(m.id.endswith("fast_passive") for m in plan(SuiteConfig.quick(), None, tmp_path))  # in-process
    compiled = next(m for m in measurements if m.id == "train/student/fast_compile")  # this CI machine has a compiler
    assert compiled.spec["options"] == {"compile": True} and compiled.spec["speed"] == "fast"
    assert not any("compile" in m.id for m in plan(SuiteConfig.quick(), None, tmp_path))  # a minute per compile
    checkpointed = next(m for m in measurements if m.id == "train/teacher/fast_checkpointed")
    assert checkpointed.spec["options"] == {"activation_checkpointing": True}
    profiled = next(m for m in measurements if m.id == "profile/train_compile")
    assert profiled.spec["options"] == {"compile": True} and profiled.spec["target"] == "train"
    assert not any(m.id.startswith("video") for m in plan(SuiteConfig(skip=("video",)), None, None))


def test_long_video_check_starts_with_the_pipeline_full(tmp_path):
    """The short video holds more chunks than the pipeline keeps in flight, so the growth measured
    is growth with length, not the queues filling; the long one has 4x its frames."""
    from emenet.video.predict import chunks_in_flight
    spec = next(m for m in plan(SuiteConfig(), tmp_path / "v.mp4", tmp_path) if m.id == "long_video").spec
    short, long = spec["lengths"]
    assert short > spec["batch"] * chunks_in_flight() and long == 4 * short


def _result(fps: float, cpu: float = 0.01) -> dict:
    return {"frames_per_s": fps, "cpu_s_per_frame": cpu, "peak_rss_mb": 500.0}


def test_targets_use_ratios_within_the_run():
    results = {
        "inference/1/baseline": {"batched": _result(20.0), "streaming": _result(20.0), "setup_s": 0.0},
        "inference/1/fused": {"batched": _result(90.0), "streaming": _result(50.0), "setup_s": 0.5},
        "inference/5/baseline": {"batched": _result(4.0), "streaming": _result(4.0), "setup_s": 0.0},
        "inference/5/fused": {"batched": _result(18.0), "streaming": _result(9.0), "setup_s": 0.5},
        "train/teacher/baseline": {**_result(4.0), "settings": {}, "clips": 6, "seq_len": 30},
        "train/teacher/fast": {**_result(6.0), "settings": {"channels_last": True}, "clips": 6, "seq_len": 30},
        "train/teacher/fast_passive": {**_result(8.0), "settings": {}, "clips": 6, "seq_len": 30},
        "train/teacher/fast_bf16": {**_result(20.0), "settings": {"bf16": True}, "clips": 6, "seq_len": 30},
        "train/student/baseline": {**_result(4.0), "settings": {}, "clips": 2, "seq_len": 30},
        "train/student/fast_compile": {**_result(7.0), "settings": {"compile": True}, "clips": 2, "seq_len": 30},
        "ceiling": {"macs_per_frame": 1e9, "matmul_gmac_per_s": 30.0},
        "train/loader": {"runs": [{"workers": 0, "steps": 2, "frames_per_s": 500.0, "peak_rss_mb": 1.0}],
                         "clips_per_task": 2, "seq_len": 30},
        "long_video": {"runs": [], "peak_growth_mb": 3.0, "length_ratio": 4.0},
        "video/5/auto": {"error": "RuntimeError: boom"},
    }
    report = {"results": results, "config": {"members": 5}}
    targets = {t["target"]: t for t in evaluate_targets(report)}
    assert targets["one model, batched"]["met"] is True and "4.50x" in targets["one model, batched"]["measured"]
    assert targets["5-member ensemble, batched"]["met"] is False
    assert targets["video pipeline, 5-member ensemble"]["met"] is None  # failed: not measured
    train = targets["training step"]  # teacher 3x: missed on fp32 (bf16 is faster, but changes the losses)
    assert train["met"] is False and "teacher 2.00x (fast_passive: none;" in train["measured"]
    assert "student 1.75x (fast_compile: compile;" in train["measured"]
    # 3 x 4 frames/s x 3 GMAC per training frame (3x the forward's 1 GMAC) = 36 GMAC/s of the 30 GMAC/s peak
    assert "needs 36 GMAC/s = 120% of" in train["detail"] and "teacher with bf16 autocast" in train["detail"]
    assert "5.00x (fast_bf16)" in train["detail"]
    memory = targets["default teacher step memory"]  # fast: 500 MB
    assert memory["met"] is True and memory["measured"] == "0.5 GB (fast)"
    assert targets["loader keeps up with the step"]["met"] is True  # 500 / 8 = 62x
    assert targets["long video: memory flat in length"]["met"] is True


def test_quick_suite_writes_markdown_and_json(tmp_path, shared_dir):
    out = tmp_path / "results"
    argv = ["bench", "--quick", "--out_dir", str(out), "--name", "smoke", "--video",
            str(shared_dir / "data" / "utterance_1.mp4")]
    assert main(argv) == 0
    report = json.loads((out / "smoke.json").read_text())
    for key in ("machine", "versions", "method", "config", "results", "targets", "started"):
        assert key in report
    assert report["versions"]["torch"] and report["machine"]["usable_cpus"] >= 1
    r = report["results"]
    errors = {k: v["error"] for k, v in r.items() if "error" in v}
    assert not errors
    for key in ("inference/1/baseline", "inference/1/fused", "inference/2/baseline", "inference/2/fused"):
        for mode in ("batched", "streaming"):
            assert {"frames_per_s", "cpu_s_per_frame", "peak_rss_mb", "median_s", "wall_s"} <= set(r[key][mode])
        assert r[key]["_meta"]["load_before"] is not None
    assert r["inference/2/fused"]["max_abs_logit_diff_vs_baseline"] < 1e-4
    assert r["inference/2/fused"]["batched"]["paired_speedup"]["median"] > 0
    assert {"video/1/baseline", "video/2/auto", "video_stages", "long_video", "train/teacher/fast",
            "train/student/baseline", "train/loader", "profile/inference", "profile/train", "ceiling"} <= set(r)
    assert r["ceiling"]["matmul_gmac_per_s"] > 0 and r["ceiling"]["n"] == 256
    assert r["ceiling"]["backbone_macs_per_frame"] == 220_899_840  # MobileFaceNet at 112x112 (emenet.profiling)
    assert [len(x) for x in (r["long_video"]["runs"],)] == [2]
    assert r["profile/inference"]["top_ops"][0]["op"].startswith("aten::")
    md = (out / "smoke.md").read_text()
    for heading in ("## Targets", "## Inference", "## Video pipeline", "## Training step", "## Profile",
                    "## Compute ceiling"):
        assert heading in md
    assert "| members | mode | path | frames/s | x baseline | x baseline (paired) | CPU ms/frame |" in md
    assert not (out / ".smoke.partial.json").exists()
    assert main(argv) == 2  # refuses to overwrite without --overwrite


def test_video_target_says_which_backend_meets_it():
    def video(fps: float, backend: str) -> dict:
        stages = {"predict": {"seconds": 2.0, "frames_per_s": 150.0}}
        return {"frames_per_s": fps, "backend": backend, "num_frames": 300, "stages": stages, "peak_rss_mb": 900.0}
    results = {"video/5/baseline": video(16.0, "eager"), "video/5/auto": video(28.7, "onnx"),
               "video/5/int8": video(33.0, "int8"), "video/5/bf16": video(29.0, "bf16")}
    target = {t["target"]: t for t in evaluate_targets({"results": results, "config": {"members": 5}})}[
        "video pipeline, 5-member ensemble"]
    assert target["met"] is True and target["detail"] == "met with --backend int8"
    assert target["measured"] == ("28.7 frames/s (default path); 33.0 frames/s (--backend int8); 29.0 frames/s "
                                  "(--backend bf16) (baseline 16.0)")
    results["video/5/auto"] = video(31.0, "onnx")
    target = evaluate_targets({"results": results, "config": {"members": 5}})[2]
    assert target["met"] is True and target["detail"] == "met on the default path"
    results["video/5/int8"] = video(20.0, "int8")
    results["video/5/auto"] = results["video/5/bf16"] = {"error": "RuntimeError: x"}
    target = evaluate_targets({"results": results, "config": {"members": 5}})[2]
    assert target["met"] is False and target["measured"].startswith("20.0 frames/s (--backend int8)")
    from emenet.bench.report import _video_table
    assert "| 5 | int8 (int8) | 300 | 20.0 | 1.25x | predict 2.0 (150) |" in _video_table(results, [5])


def test_one_model_video_target_is_60_frames_per_s_and_names_its_path():
    def video(fps: float, backend: str) -> dict:
        return {"frames_per_s": fps, "backend": backend, "num_frames": 300, "stages": {}, "peak_rss_mb": 800.0}
    results = {"video/1/auto": video(49.3, "onnx"), "video/1/int8": video(62.0, "int8"),
               "video/5/auto": video(37.9, "onnx")}
    targets = {t["target"]: t for t in evaluate_targets({"results": results, "config": {"members": 5}})}
    one = targets["video pipeline, 1 model"]
    assert one["required"] == ">= 60 frames/s end to end"
    assert one["met"] is True and one["detail"] == "met with --backend int8"
    assert targets["video pipeline, 5-member ensemble"]["detail"] == "met on the default path"  # 37.9 >= 30
    results["video/1/int8"] = video(59.9, "int8")
    one = {t["target"]: t for t in evaluate_targets({"results": results, "config": {"members": 5}})}[
        "video pipeline, 1 model"]
    assert one["met"] is False


def test_one_model_target_prefers_the_paired_ratio():
    def row(fps, paired=None):
        out = _result(fps)
        if paired is not None:
            out["paired_speedup"] = {"pairs": 3, "ratios": [paired] * 3, "median": paired}
        return {"batched": out, "streaming": _result(fps), "setup_s": 0.0}
    results = {"inference/1/baseline": row(20.0), "inference/1/fused": row(70.0, 3.1),
               "inference/1/onnx": row(60.0, 4.2)}  # separate runs: fused looks best (3.5x); paired: onnx 4.2x
    target = evaluate_targets({"results": results, "config": {"members": 5}})[0]
    assert target["met"] is True and target["measured"].startswith("4.20x (onnx, timed alternately")
    assert "separate runs: 3.50x (fused" in target["detail"] and "(fused): 3.10x" in target["detail"]


def test_paired_speedup_is_the_median_of_alternate_ratios():
    import time
    from emenet.bench.measure import paired_speedup
    out = paired_speedup(lambda: time.sleep(0.02), lambda: time.sleep(0.005), repeat=3)
    assert out["pairs"] == 3 and len(out["ratios"]) == 3
    assert 1.5 < out["median"] < 6  # 4 by construction; sleep overshoots a little on a busy machine


def test_ensemble_target_is_put_against_the_compute_ceiling():
    results = {"inference/5/baseline": {"batched": _result(4.0), "streaming": _result(4.0), "setup_s": 0.0},
               "inference/5/onnx": {"batched": _result(20.0), "streaming": _result(9.0), "setup_s": 1.0},
               "ceiling": {"macs_per_frame": 2e8, "matmul_gmac_per_s": 100.0, "n": 1024, "threads": 2}}
    targets = {t["target"]: t for t in evaluate_targets({"results": results, "config": {"members": 5}})}
    detail = targets["5-member ensemble, batched"]["detail"]
    # 60 frames/s x 5 members x 0.2 GMAC = 60 GMAC/s, 60% of 100; reached: 20 x 5 x 0.2 = 20 GMAC/s
    assert detail.startswith("needs 60 GMAC/s = 60% of this machine's fp32 matmul peak (100 GMAC/s)")
    assert detail.endswith("the best path runs 20.0 GMAC/s (20%)")
    results["ceiling"]["peaks_gmac_per_s"] = {"fp32": 100.0, "fp32_onnxruntime": 80.0}  # onnx: against its own too
    targets = {t["target"]: t for t in evaluate_targets({"results": results, "config": {"members": 5}})}
    assert targets["5-member ensemble, batched"]["detail"].endswith(
        "the best path runs 20.0 GMAC/s (20%), 25% of the fp32_onnxruntime matmul peak (80 GMAC/s) its arithmetic has")


def test_training_step_account_splits_the_profile_and_bounds_the_step():
    from emenet.bench.report import train_op_account
    ops = [("## Call CompiledFxGraph abc ##", 400.0), ("aten::convolution_backward", 300.0),
           ("aten::mkldnn_convolution", 100.0), ("aten::copy_", 50.0)]  # of 1000 ms in all: 150 ms not listed
    profile = {"top_ops": [{"op": op, "calls": 1, "self_cpu_ms": ms, "share": ms / 1000.0} for op, ms in ops]}
    ceiling = {"macs_per_frame": 2.1e8, "backbone_macs_per_frame": 2e8, "matmul_gmac_per_s": 160.0}
    a = train_op_account(profile, 100, ceiling)
    assert (a["conv_ms"], a["elementwise_ms"], a["rest_ms"]) == pytest.approx((400.0, 400.0, 200.0))
    # 100 frames x 3 x 0.2 GMAC = 60 GMAC in 0.4 s of convolutions; at 160 GMAC/s they would take 0.375 s
    assert a["conv_gmac_per_s"] == pytest.approx(150.0)
    assert a["frames_per_s_at_peak"] == pytest.approx(100 / (0.375 + 0.6))
    assert train_op_account({"error": "x"}, 100, ceiling) is None and train_op_account(profile, None, ceiling) is None
    results = {"train/teacher/baseline": {**_result(40.0), "settings": {}, "clips": 6, "seq_len": 30},
               "train/teacher/fast_compile": {**_result(60.0), "settings": {"compile": True}, "clips": 6,
                                              "seq_len": 30},
               "profile/train_compile": {**profile, "frames": 100}, "ceiling": {**ceiling, "n": 1024, "threads": 2}}
    train = {t["target"]: t for t in evaluate_targets({"results": results, "config": {"members": 5}})}["training step"]
    # 3x the baseline needs 120 frames/s; at most 102.6 with the convolutions at the peak: 2.6x
    assert "profiled compile step: convolutions 40% of its time at 150 GMAC/s (94% of the fp32 matmul peak)" in \
        train["detail"] and "it would run 103 frames/s (2.6x)" in train["detail"]


def test_onnx_profile_splits_kernel_time_by_operator(require_extra):
    require_extra("onnxruntime", "onnx")
    from emenet.bench.workloads import onnx_profile
    ops = {x["op"]: x for x in onnx_profile({"members": 1, "batch": 2})["top_ops"]}
    assert "Conv" in ops and "PRelu" not in ops  # PReLU runs as convolutions in the blocked layout
    assert sum(x["share"] for x in ops.values()) == pytest.approx(1.0, abs=0.02)  # top 12 hold nearly all


def test_render_markdown_reports_a_failed_path():
    report = {"results": {"inference/1/baseline": {"error": "RuntimeError: x"}}, "machine": {
        "cpu": "c", "usable_cpus": 2, "gpu": None, "torch_threads": 2, "python": "3", "platform": "p"},
        "config": {"members": 1, "batch": 4, "stream_frames": 2, "quick_mode": True}, "versions": {},
        "method": {"timing": "t", "training_timing": "t", "video_timing": "v", "memory": "m", "baseline": "b",
                   "isolation": "i"}, "started": "now", "seconds": 1.0, "targets": []}
    assert "failed: RuntimeError: x" in render_markdown(report)


@pytest.mark.parametrize("flag", [["--members", "0"], ["--video", "/nonexistent.mp4"]])
def test_bad_bench_arguments_are_one_line_errors(flag, tmp_path, capsys):
    assert main(["bench", "--quick", "--out_dir", str(tmp_path), "--skip", "train", "profile", "inference",
                 *flag]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_gpu_report_renders_every_measured_row():
    """The GPU column's report (measured on CUDA machines only) from a hand-made result set."""
    from emenet.bench.gpu import render_gpu_markdown
    timing = {"frames_per_s": 100.0, "paired_speedup_vs_fp32": 2.0, "median_s": 0.5}
    r = {"machine": {"gpu": "Test GPU"}, "versions": {"torch": "2.x"}, "method": "m",
         "settings": {"members": 5, "batch": 64, "stream_frames": 32, "warmup": 3, "repeat": 10},
         "inference": [{"members": 5, "path": "graphs_bf16", "batched": timing, "streaming": timing,
                        "max_abs_logit_diff_vs_fp32": 1e-3},
                       {"members": 1, "path": "compile_bf16", "error": "RuntimeError: no"}],
         "onnx_cuda": {"skipped": "no CUDA provider"},
         "train": [{"role": "teacher", "speed": "fast", "settings": {"bf16": True, "compile": False},
                    "peak_cuda_mb": 2508.0, "median_s": 0.05, "frames_per_s": 3300.0}]}
    md = render_gpu_markdown(r)
    assert "| 5 | graphs_bf16 | 100 | 2.00 | 100 | 2.00 | 1.0e-03 |" in md
    assert "| 1 | compile_bf16 | failed: RuntimeError: no" in md
    assert "no CUDA provider" in md and "| teacher | fast | bf16 | 0.0500 | 3300 | 2508 |" in md


def test_each_path_is_put_against_the_peak_of_its_own_arithmetic():
    from emenet.bench.report import ceiling_use
    results = {"inference/5/int8": {"batched": _result(50.0), "streaming": _result(20.0), "setup_s": 1.0},
               "inference/5/bf16": {"batched": _result(80.0), "streaming": _result(30.0), "setup_s": 1.0},
               "inference/1/onnx": {"batched": _result(100.0), "streaming": _result(50.0), "setup_s": 1.0},
               "inference/5/fused": {"error": "failed"}}
    ceiling = {"macs_per_frame": 2e8, "peaks_gmac_per_s": {"fp32": 50.0, "fp32_onnxruntime": 40.0,
                                                           "int8_onnxruntime": 200.0, "bf16": 400.0}}
    use = {(u["members"], u["path"]): u for u in ceiling_use(results, ceiling)}
    assert set(use) == {(5, "int8"), (5, "bf16"), (1, "onnx")}  # failed runs are left out
    # 50 frames/s x 5 members x 0.2 GMAC = 50 GMAC/s of int8's 200; bf16: 80 GMAC/s of 400; onnx 20 of 40
    assert use[5, "int8"]["gmac_per_s"] == pytest.approx(50.0) and use[5, "int8"]["share"] == pytest.approx(0.25)
    assert use[5, "bf16"]["peak"] == "bf16" and use[5, "bf16"]["share"] == pytest.approx(0.2)
    assert use[1, "onnx"]["peak"] == "fp32_onnxruntime" and use[1, "onnx"]["share"] == pytest.approx(0.5)


def test_matmul_peaks_time_every_arithmetic():
    from emenet.bench.workloads import _matmul_peaks
    peaks = _matmul_peaks(64, warmup=1, repeat=2)
    assert {"fp32", "bf16", "int8"} <= set(peaks) and all(v > 0 for v in peaks.values())


@pytest.mark.parametrize("integer", [False, True])
def test_onnx_matmul_of_the_ceiling_computes_the_product_it_times(integer, require_extra):
    require_extra("onnxruntime", "onnx")
    import numpy as np
    from emenet.bench.workloads import _onnx_matmul
    rng = np.random.default_rng(0)  # the workload's own inputs, drawn again
    if integer:
        a, b = rng.integers(0, 256, (16, 16), dtype=np.uint8), rng.integers(-128, 128, (16, 16), dtype=np.int8)
        np.testing.assert_array_equal(_onnx_matmul(16, True)()[0], a.astype(np.int32) @ b.astype(np.int32))
    else:
        a, b = rng.random((16, 16), dtype=np.float32), rng.random((16, 16), dtype=np.float32)
        np.testing.assert_allclose(_onnx_matmul(16, False)()[0], a.astype(np.float64) @ b, rtol=1e-5)


def test_train_row_with_activation_checkpointing_reports_its_settings_and_first_step():
    from emenet.bench.workloads import train_step
    res = train_step({"role": "student", "speed": "fast", "clips": 1, "seq_len": 2, "warmup": 1, "repeat": 1,
                      "options": {"activation_checkpointing": True}})
    assert res["settings"]["activation_checkpointing"] and res["settings"]["channels_last"]
    assert not res["settings"]["compile"] and res["first_step_s"] > 0 and res["warmup"] == 1 and res["repeat"] == 1
