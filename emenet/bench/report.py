"""The benchmark report: ratios against the baseline, the issue's targets, and a markdown rendering."""
from __future__ import annotations

BASELINE = "baseline"
# the training step's fast rows: the CLI's `--train_speed fast` alone, with OMP_WAIT_POLICY=PASSIVE, and with
# its `--compile` / `--bf16` (emenet.fast.training.TrainSpeed.from_options) / `--activation_checkpointing` flags
TRAIN_FLAGS = {"fast_compile": {"compile": True}, "fast_bf16": {"bf16": True},
               "fast_compile_bf16": {"compile": True, "bf16": True},
               "fast_checkpointed": {"activation_checkpointing": True}}
FAST_TRAIN = ("fast", "fast_passive", *TRAIN_FLAGS)
DEFAULT_TRAIN = "fast"  # what `emenet train` runs without speed flags
TRAIN_MACS_PER_FORWARD_MAC = 3  # a training frame: the forward, the input gradient and the weight gradient
FOLLOW = "auto_follow"  # the video pipeline on the default path, faces searched every FOLLOW_EVERY-th frame
FOLLOW_EVERY = 4
VIDEO_BACKENDS = ("int8", "bf16")  # video rows beside the default path: faster, but they change the numbers

# issue 6's targets on the 2-core CPU
TARGET_ONE_MODEL_SPEEDUP = 4.0  # one model, batched, x the eager baseline
TARGET_ENSEMBLE_FPS = 60.0  # five members, batched
TARGET_VIDEO_FPS = {1: 60.0, "ensemble": 30.0}  # video pipeline end to end: one model, the ensemble
TARGET_TRAIN_SPEEDUP = {"teacher": 3.0, "student": 1.5}  # issue 14: fp32 steps, x the eager baseline
TARGET_TEACHER_PEAK_MB = 3 * 1024.0  # the default teacher step's peak resident memory
LOADER_MARGIN = 10.0  # the loader must deliver frames >= 10x as fast as the step consumes them
FLAT_MEMORY_MB = 64.0  # peak growth allowed from the short to the long video

# which matrix-product peak of the ceiling workload bounds each inference path (its arithmetic and kernels)
PATH_PEAK = {BASELINE: "fp32", "eager": "fp32", "fused": "fp32", "compile": "fp32", "onnx": "fp32_onnxruntime",
             "int8": "int8_onnxruntime", "bf16": "bf16"}


def _ok(result: dict | None) -> bool:
    return isinstance(result, dict) and "error" not in result


def _inference_rows(results: dict, members: int) -> dict[str, dict]:
    prefix = f"inference/{members}/"
    return {k[len(prefix):]: v for k, v in results.items() if k.startswith(prefix) and _ok(v)}


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else a / b


def _best(rows: dict[str, dict], mode: str) -> tuple[str | None, float | None]:
    fast = {k: v[mode]["frames_per_s"] for k, v in rows.items() if k != BASELINE}
    if not fast:
        return None, None
    name = max(fast, key=fast.get)
    return name, fast[name]


def _paired(mode_result: dict) -> float | None:
    """The speed-up timed alternately with the baseline in the path's own process, where measured."""
    return mode_result.get("paired_speedup", {}).get("median")


def _best_paired(rows: dict[str, dict], mode: str) -> tuple[str | None, float | None]:
    paired = {k: _paired(v[mode]) for k, v in rows.items() if k != BASELINE and _paired(v[mode])}
    if not paired:
        return None, None
    name = max(paired, key=paired.get)
    return name, paired[name]


def _target(name: str, required: str, measured: str, met: bool | None, detail: str = "") -> dict:
    return {"target": name, "required": required, "measured": measured, "met": met, "detail": detail}


def _compute_detail(ceiling: dict | None, needed_frames_per_s: float, reached_frames_per_s: float | None,
                    path: str | None = None) -> str:
    """The multiply-adds per second a frame rate needs, against this machine's measured fp32 matmul
    ceiling, and what the best path (`path`) reaches, against the peak of its own arithmetic where
    that is not fp32 torch (PATH_PEAK)."""
    if not _ok(ceiling):
        return ""
    macs, peak = ceiling["macs_per_frame"], ceiling["matmul_gmac_per_s"]
    needed = needed_frames_per_s * macs / 1e9
    text = f"needs {needed:.0f} GMAC/s = {100 * needed / peak:.0f}% of this machine's fp32 matmul peak ({peak:.0f} GMAC/s)"
    if reached_frames_per_s:
        reached = reached_frames_per_s * macs / 1e9
        text += f"; the best path runs {reached:.1f} GMAC/s ({100 * reached / peak:.0f}%)"
        own_name = PATH_PEAK.get(path or "")
        own = ceiling.get("peaks_gmac_per_s", {}).get(own_name) if own_name != "fp32" else None
        if own:
            text += f", {100 * reached / own:.0f}% of the {own_name} matmul peak ({own:.0f} GMAC/s) its arithmetic has"
    return text


# torch.profiler rows of a training step by kind: the convolutions (forward and both backward products:
# all of the backbone's multiply-adds) and the memory-bound passes between them (batch norm, PReLU and their
# backward; compiled, inductor's fused loops of the model's forward and backward, which also hold the GRU
# heads' elementwise work; the losses and Adam run outside the compiled graph)
CONV_OPS = ("convolution",)
ELEMENTWISE_OPS = ("CompiledFxGraph", "batch_norm", "prelu", "BatchNormPReLU", "addcmul")


def train_op_account(profile: dict | None, frames: int | None, ceiling: dict | None) -> dict | None:
    """Where a profiled training step's time goes (`profile`: the bench's profile of one step of
    `frames` frames): milliseconds of the convolutions, of the elementwise passes and of the rest,
    the convolutions' multiply-adds per second, and the step's frame rate if the convolutions ran
    at the fp32 matmul peak and the rest as measured (what no faster convolution can pass)."""
    if not _ok(profile) or not _ok(ceiling) or not frames or not profile.get("top_ops"):
        return None
    rows = profile["top_ops"]
    total = rows[0]["self_cpu_ms"] / rows[0]["share"]  # the shares are of all operators' time
    conv = sum(x["self_cpu_ms"] for x in rows if any(k in x["op"] for k in CONV_OPS))
    elementwise = sum(x["self_cpu_ms"] for x in rows if any(k in x["op"] for k in ELEMENTWISE_OPS)
                      and not any(k in x["op"] for k in CONV_OPS))
    macs = frames * TRAIN_MACS_PER_FORWARD_MAC * ceiling.get("backbone_macs_per_frame", ceiling["macs_per_frame"])
    peak = ceiling["matmul_gmac_per_s"]
    rest = total - conv - elementwise
    return {"total_ms": total, "conv_ms": conv, "elementwise_ms": elementwise, "rest_ms": rest,
            "conv_gmac_per_s": macs / conv / 1e6 if conv else None,
            "frames_per_s_at_peak": frames / (macs / peak / 1e9 + (elementwise + rest) / 1e3)}


def _op_account_text(name: str, account: dict, peak: float, baseline_fps: float | None) -> str:
    a = account
    text = (f"{name}: convolutions {100 * a['conv_ms'] / a['total_ms']:.0f}% of its time at "
            f"{a['conv_gmac_per_s']:.0f} GMAC/s ({100 * a['conv_gmac_per_s'] / peak:.0f}% of the fp32 matmul peak), "
            f"batch norm/PReLU passes {100 * a['elementwise_ms'] / a['total_ms']:.0f}%, the rest "
            f"{100 * a['rest_ms'] / a['total_ms']:.0f}%; with its convolutions at the full peak it would run "
            f"{a['frames_per_s_at_peak']:.0f} frames/s")
    if baseline_fps:
        text += f" ({a['frames_per_s_at_peak'] / baseline_fps:.1f}x)"
    return text


def _train_settings(res: dict) -> str:
    return ", ".join(k for k, v in res["settings"].items() if v) or "none"


def _train_target(r: dict) -> dict:
    """The training-step target on the fastest fp32 path per role (bf16 changes the losses beyond
    fp32 rounding: its best is in the detail), with the arithmetic limit of a missed ratio."""
    met, parts, details = [], [], []
    for role, target in TARGET_TRAIN_SPEEDUP.items():
        slow = r.get(f"train/{role}/{BASELINE}")
        fast = {k: r[f"train/{role}/{k}"] for k in FAST_TRAIN if _ok(r.get(f"train/{role}/{k}"))}
        if not fast or not _ok(slow):
            continue
        fp32 = {k: v for k, v in fast.items() if not v["settings"].get("bf16")}
        if fp32:
            name = max(fp32, key=lambda k: fp32[k]["frames_per_s"])
            best = fp32[name]
            ratio = best["frames_per_s"] / slow["frames_per_s"]
            met.append(ratio >= target)
            parts.append(f"{role} {ratio:.2f}x ({name}: {_train_settings(best)}; {best['frames_per_s']:.1f} vs "
                         f"{slow['frames_per_s']:.1f} frames/s)")
            if ratio < target and _ok(r.get("ceiling")):
                train_macs = TRAIN_MACS_PER_FORWARD_MAC * r["ceiling"]["macs_per_frame"]
                ceiling = {**r["ceiling"], "macs_per_frame": train_macs}
                details.append(f"{role} {target:g}x ({target * slow['frames_per_s']:.0f} frames/s at "
                               f"{train_macs / 1e6:.0f}M multiply-adds per training frame, "
                               f"{TRAIN_MACS_PER_FORWARD_MAC}x the forward's) "
                               + _compute_detail(ceiling, target * slow["frames_per_s"], best["frames_per_s"]))
                if role == "teacher":
                    details += [_op_account_text(f"profiled {key.removeprefix('profile/train')[1:] or 'fast'} step",
                                                 account, r["ceiling"]["matmul_gmac_per_s"], slow["frames_per_s"])
                                for key, account in train_accounts(r).items()]
        bf16 = {k: v for k, v in fast.items() if v["settings"].get("bf16")}
        if bf16:
            name = max(bf16, key=lambda k: bf16[k]["frames_per_s"])
            details.append(f"{role} with bf16 autocast (changes the losses beyond fp32 rounding): "
                           f"{bf16[name]['frames_per_s'] / slow['frames_per_s']:.2f}x ({name})")
    required = ", ".join(f">= {t:g}x {role}" for role, t in TARGET_TRAIN_SPEEDUP.items()) + " (eager baseline, fp32)"
    return _target("training step", required, "; ".join(parts) or "n/a", all(met) if met else None,
                   "; ".join(details))


def train_accounts(r: dict) -> dict[str, dict]:
    """`train_op_account` of each profiled teacher step in the results (fast; fast with --compile)."""
    out = {}
    for key in ("profile/train", "profile/train_compile"):
        res = r.get(key)
        account = train_op_account(res, (res or {}).get("frames"), r.get("ceiling"))
        if account and account["conv_ms"]:
            out[key] = account
    return out


def _train_memory_detail(r: dict) -> str:
    rows = [(k, r[f"train/teacher/{k}"]) for k in (BASELINE, *FAST_TRAIN) if _ok(r.get(f"train/teacher/{k}"))]
    return ", ".join(f"{k} {v['peak_rss_mb'] / 1024:.1f} GB" for k, v in rows if v.get("peak_rss_mb"))


def evaluate_targets(report: dict) -> list[dict]:
    """Each target of the issue with its measured value; `met` is None where it was not measured."""
    r = report["results"]
    members = report["config"]["members"]
    out = []
    one = _inference_rows(r, 1)
    name, fps = _best(one, "batched")
    base = one.get(BASELINE, {}).get("batched", {}).get("frames_per_s")
    ratio = _ratio(fps, base)
    auto = _ratio(one.get("fused", {}).get("batched", {}).get("frames_per_s"), base)
    paired_name, paired = _best_paired(one, "batched")
    if paired is not None:  # the load-robust figure decides; the separate runs' ratio is shown beside it
        fused_paired = _paired(one.get("fused", {}).get("batched", {}))
        out.append(_target("one model, batched", f">= {TARGET_ONE_MODEL_SPEEDUP:g}x eager baseline",
                           f"{paired:.2f}x ({paired_name}, timed alternately with the baseline)",
                           paired >= TARGET_ONE_MODEL_SPEEDUP,
                           ("" if ratio is None else f"separate runs: {ratio:.2f}x ({name}, {fps:.1f} vs {base:.1f} "
                            f"frames/s)") + ("" if fused_paired is None else
                                             f"; without the onnx extra (fused): {fused_paired:.2f}x")))
    else:
        out.append(_target("one model, batched", f">= {TARGET_ONE_MODEL_SPEEDUP:g}x eager baseline",
                           "n/a" if ratio is None else f"{ratio:.2f}x ({name}, {fps:.1f} vs {base:.1f} frames/s)",
                           None if ratio is None else ratio >= TARGET_ONE_MODEL_SPEEDUP,
                           "" if auto is None else f"without the onnx extra (fused, the default then): {auto:.2f}x"))
    ens = _inference_rows(r, members)
    name, fps = _best(ens, "batched")
    base = ens.get(BASELINE, {}).get("batched", {}).get("frames_per_s")
    out.append(_target(f"{members}-member ensemble, batched", f">= {TARGET_ENSEMBLE_FPS:g} frames/s",
                       "n/a" if fps is None else f"{fps:.1f} frames/s ({name}; baseline {base or 0:.1f})",
                       None if fps is None else fps >= TARGET_ENSEMBLE_FPS,
                       _compute_detail(r.get("ceiling"), TARGET_ENSEMBLE_FPS * members, fps and fps * members,
                                       name)))
    if any(_ok(r.get(f"video/1/{k}")) for k in ("auto", *VIDEO_BACKENDS)):
        out.append(_video_target(r, 1))
    out.append(_video_target(r, members))
    out.append(_train_target(r))
    default = r.get(f"train/teacher/{DEFAULT_TRAIN}")
    if _ok(default) and default.get("peak_rss_mb"):
        out.append(_target("default teacher step memory", f"<= {TARGET_TEACHER_PEAK_MB / 1024:g} GB peak resident",
                           f"{default['peak_rss_mb'] / 1024:.1f} GB ({DEFAULT_TRAIN})",
                           default["peak_rss_mb"] <= TARGET_TEACHER_PEAK_MB, _train_memory_detail(r)))
    load = r.get("train/loader")
    steps = [r[f"train/teacher/{k}"] for k in FAST_TRAIN if _ok(r.get(f"train/teacher/{k}"))]
    step = max(steps, key=lambda x: x["frames_per_s"]) if steps else None
    if _ok(load) and step is not None:
        slowest = min(run["frames_per_s"] for run in load["runs"])
        margin = slowest / step["frames_per_s"]
        out.append(_target("loader keeps up with the step", f">= {LOADER_MARGIN:g}x the step's frames/s",
                           f"{margin:.0f}x ({slowest:.0f} vs {step['frames_per_s']:.1f} frames/s)",
                           margin >= LOADER_MARGIN))
    longv = r.get("long_video")
    if _ok(longv):
        out.append(_target("long video: memory flat in length", f"peak grows <= {FLAT_MEMORY_MB:g} MB",
                           f"{longv['peak_growth_mb']:+.0f} MB for {longv['length_ratio']:.0f}x the frames",
                           longv["peak_growth_mb"] <= FLAT_MEMORY_MB))
    return out


# -------------------------------------------------------------------------------- markdown

def _f(x: float | None, digits: int = 1) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _load(result: dict) -> str:
    meta = result.get("_meta", {})
    before = meta.get("load_before")
    return "" if not before else f"{before[0]:.1f}"


def ceiling_use(r: dict, ceiling: dict) -> list[dict]:
    """Each batched inference path's multiply-adds per second against the matrix-product peak of its
    own arithmetic (PATH_PEAK): how far it is from what its kernels could reach on this machine."""
    peaks, macs, out = ceiling.get("peaks_gmac_per_s", {}), ceiling["macs_per_frame"], []
    for key, res in r.items():
        parts = key.split("/")
        if len(parts) != 3 or parts[0] != "inference" or not _ok(res) or "batched" not in res:
            continue
        members, path = int(parts[1]), parts[2]
        peak_name = PATH_PEAK.get(path)
        reached = res["batched"]["frames_per_s"] * members * macs / 1e9
        peak = peaks.get(peak_name)
        out.append({"members": members, "path": path, "gmac_per_s": reached, "peak": peak_name, "peak_gmac_per_s": peak,
                    "share": reached / peak if peak else None})
    return out


def _ceiling_section(r: dict, ceil: dict, members: int) -> list[str]:
    peaks = ceil.get("peaks_gmac_per_s", {})
    per_frame = ceil["matmul_gmac_per_s"] * 1e9 / ceil["macs_per_frame"]
    parts = ["## Compute ceiling", "",
             f"A {ceil['n']}x{ceil['n']} fp32 matrix product (torch.mm, {ceil['threads']} threads, timed in turn "
             f"with the other arithmetics below, no ONNX Runtime thread spinning) runs "
             f"{ceil['matmul_gmac_per_s']:.1f} GMAC/s here: the fastest fp32 kernel this CPU has, so a bound for "
             f"every fp32 path rather than a rate its convolutions reach (depthwise ones, and the memory-bound "
             f"batch norm and PReLU passes between them, reach a fraction of it). EMENet-V costs "
             f"{ceil['macs_per_frame'] / 1e6:.0f}M multiply-adds per frame "
             f"({ceil['backbone_macs_per_frame'] / 1e6:.0f}M in the backbone), so even at that rate one model could "
             f"run at most {per_frame:.0f} frames/s and a {members}-member ensemble {per_frame / members:.0f}; a "
             f"training frame costs {TRAIN_MACS_PER_FORWARD_MAC}x the forward's (the forward, the input and the "
             f"weight gradients): at most {per_frame / TRAIN_MACS_PER_FORWARD_MAC:.0f} training frames/s.", ""]
    accounts = train_accounts(r)
    if accounts:
        base = r.get(f"train/teacher/{BASELINE}")
        base_fps = base["frames_per_s"] if _ok(base) else None
        parts += ["Where the teacher training step's time goes (the profiles below, self time by kind of operator; "
                  "the convolutions' multiply-adds are the backbone's, 3x the forward's per frame): " + "; ".join(
                      _op_account_text(f"{key.removeprefix('profile/train')[1:] or 'fast'} step", account,
                                       ceil["matmul_gmac_per_s"], base_fps) for key, account in accounts.items())
                  + ". What stays when the convolutions are as fast as a matrix product bounds the step.", ""]
    if peaks:
        parts += ["Matrix-product peaks by arithmetic (timed in turn, same load): " +
                  ", ".join(f"{k} {v:.0f} GMAC/s" for k, v in peaks.items()) + ". Each batched path against the "
                  "peak of its own arithmetic:", "",
                  _table(["members", "path", "GMAC/s", "peak", "peak GMAC/s", "share of peak"],
                         [[str(u["members"]), u["path"], _f(u["gmac_per_s"]), u["peak"] or "",
                           _f(u["peak_gmac_per_s"], 0), f"{100 * u['share']:.0f}%" if u["share"] else ""]
                          for u in ceiling_use(r, ceil)]), ""]
    return parts


def _inference_table(r: dict, members_list: list[int]) -> str:
    rows = []
    for members in members_list:
        prefix = f"inference/{members}/"
        group = {k[len(prefix):]: v for k, v in r.items() if k.startswith(prefix)}
        base = group.get(BASELINE, {})
        for mode in ("batched", "streaming"):
            for name, res in group.items():
                if not _ok(res):
                    rows.append([str(members), mode, name, "failed: " + res.get("error", "")[:80], "", "", "", "", "", ""])
                    continue
                m, b = res[mode], base.get(mode, {}) if _ok(base) else {}
                speed = _ratio(m["frames_per_s"], b.get("frames_per_s"))
                cpu = _ratio(b.get("cpu_s_per_frame"), m["cpu_s_per_frame"])
                paired = _paired(m)
                rows.append([str(members), mode, name, _f(m["frames_per_s"]), _f(speed, 2) + "x" if speed else "",
                             _f(paired, 2) + "x" if paired else "", _f(1e3 * m["cpu_s_per_frame"]),
                             _f(cpu, 2) + "x" if cpu else "", _f(m["peak_rss_mb"], 0), _f(res.get("setup_s")),
                             _load(res)])
    return _table(["members", "mode", "path", "frames/s", "x baseline", "x baseline (paired)", "CPU ms/frame",
                   "x baseline (CPU)", "peak RSS MB", "set-up s", "load"], rows)


def _video_table(r: dict, members_list: list[int]) -> str:
    rows = []
    for members in members_list:
        base = r.get(f"video/{members}/{BASELINE}")
        for name in (BASELINE, "auto", FOLLOW, *VIDEO_BACKENDS):
            res = r.get(f"video/{members}/{name}")
            if res is None:
                continue
            if not _ok(res):
                rows.append([str(members), name, "failed: " + res["error"][:80], "", "", "", "", ""])
                continue
            speed = _ratio(res["frames_per_s"], base["frames_per_s"]) if _ok(base) else None
            rows.append([str(members), f"{name} ({res['backend']})", str(res["num_frames"]), _f(res["frames_per_s"]),
                         _f(speed, 2) + "x" if speed else "", _stages_cell(res.get("stages")),
                         _f(res["peak_rss_mb"], 0), _load(res)])
    return _table(["members", "path", "frames", "frames/s", "x baseline", "busy s per stage (frames/s), slowest first",
                   "peak RSS MB", "load"], rows)


def _video_target(r: dict, members: int) -> dict:
    """The video target of one model or the ensemble, met on the default path (fp32) where the arithmetic
    allows it and with `--backend int8` (or bf16) otherwise: the measured line names every path, the detail
    which meets it."""
    name = "video pipeline, 1 model" if members == 1 else f"video pipeline, {members}-member ensemble"
    required = TARGET_VIDEO_FPS[1 if members == 1 else "ensemble"]
    paths = {k: r[f"video/{members}/{k}"] for k in ("auto", *VIDEO_BACKENDS) if _ok(r.get(f"video/{members}/{k}"))}
    if not paths:
        return _target(name, f">= {required:g} frames/s", "n/a", None)
    vbase = r.get(f"video/{members}/{BASELINE}")
    measured = "; ".join(f"{v['frames_per_s']:.1f} frames/s ({'default path' if k == 'auto' else '--backend ' + k})"
                         for k, v in paths.items()) + (f" (baseline {vbase['frames_per_s']:.1f})" if _ok(vbase) else "")
    meeting = [k for k, v in paths.items() if v["frames_per_s"] >= required]
    detail = ("met on the default path" if "auto" in meeting else f"met with --backend {meeting[0]}" if meeting
              else "")
    follow = _follow_detail(r.get(f"video/{members}/{FOLLOW}"))
    return _target(name, f">= {required:g} frames/s end to end", measured, bool(meeting),
                   "; ".join(x for x in (detail, follow) if x))


def _follow_detail(follow: dict | None) -> str:
    if not _ok(follow):
        return ""
    return f"with --detect_every {follow['detect_every']}: {follow['frames_per_s']:.1f} frames/s"


def _stages_cell(stages: dict | None, top: int = 4) -> str:
    """`detect 12.1 (25), predict 3.0 (103), ...`: the slowest stages of a video run."""
    if not stages:
        return ""
    return ", ".join(f"{name} {v['seconds']:.1f} ({_f(v['frames_per_s'], 0)})" for name, v in list(stages.items())[:top])


def _cold_start_table(r: dict, members_list: list[int]) -> str:
    rows = []
    for key in [f"cold_start/{m}{suffix}" for m in members_list for suffix in ("", "/int8")]:
        res = r.get(key)
        members = key.split("/")[1]
        if res is None:
            continue
        if not _ok(res):
            rows.append([members, "failed: " + res["error"][:80], "", "", "", "", ""])
            continue
        rows.append([members, res["backend"], _f(res["first_use_ready_s"]), _f(res["first_use_first_frame_s"]),
                     _f(res["cached_ready_s"]), _f(res["cached_first_frame_s"]), _load(res)])
    return _table(["members", "path", "first use: model ready s", "first use: first frame s", "cached: model ready s",
                   "cached: first frame s", "load"], rows)


def _train_table(r: dict) -> str:
    rows = []
    for role in ("teacher", "student"):
        base = r.get(f"train/{role}/{BASELINE}")
        for speed in (BASELINE, *FAST_TRAIN):
            res = r.get(f"train/{role}/{speed}")
            if res is None:
                continue
            if not _ok(res):
                rows.append([role, speed, "failed: " + res["error"][:80], "", "", "", "", "", "", ""])
                continue
            ratio = _ratio(res["frames_per_s"], base["frames_per_s"]) if _ok(base) else None
            cpu = _ratio(base["cpu_s_per_frame"], res["cpu_s_per_frame"]) if _ok(base) else None
            rows.append([role, f"{speed} ({_train_settings(res)})", f"{res['clips']} x {res['seq_len']}",
                         _f(res["frames_per_s"], 2), _f(ratio, 2) + "x" if ratio else "",
                         _f(1e3 * res["cpu_s_per_frame"], 0), _f(cpu, 2) + "x" if cpu else "",
                         _f(res["peak_rss_mb"], 0), _f(res.get("first_step_s")), _load(res)])
    return _table(["step", "path (settings)", "clips x frames", "frames/s", "x baseline", "CPU ms/frame",
                   "x baseline (CPU)", "peak RSS MB", "first step s", "load"], rows)


def render_markdown(report: dict) -> str:
    r, m, cfg = report["results"], report["machine"], report["config"]
    v = report["versions"]
    members_list = sorted({1, cfg["members"]})
    loads = [x["_meta"]["load_before"][0] for x in r.values() if x.get("_meta", {}).get("load_before")]
    parts = [f"# EMENet speed: {m['cpu']}, {m['usable_cpus']} CPU(s){', ' + m['gpu'] if m.get('gpu') else ''}",
             "",
             f"Run {report['started']} ({report['seconds'] / 60:.1f} min){' (quick smoke run)' if cfg['quick_mode'] else ''}; "
             f"torch {v.get('torch_build')} ({m['torch_threads']} threads), onnxruntime {v.get('onnxruntime')}, "
             f"numpy {v.get('numpy')}, Python {m['python']}, {m['platform']}. "
             + (f"1-min load average before the measurements: {min(loads):.1f} to {max(loads):.1f} "
                f"(other processes share this machine; compare ratios within this run)." if loads else ""),
             "",
             f"Method: {report['method']['timing']}; training: {report['method']['training_timing']}; videos: "
             f"{report['method']['video_timing']}. Peak memory: {report['method']['memory']}. "
             f"Baseline: {report['method']['baseline']}. {report['method']['isolation']}."
             + (f" {report['method']['paired'][0].upper()}{report['method']['paired'][1:]}."
                if report["method"].get("paired") else ""),
             ""]
    for note in report.get("notes", []):
        parts += [f"Note: {note}", ""]
    parts += ["## Targets", "", _table(["target", "required", "measured", "met", "detail"],
                                      [[t["target"], t["required"], t["measured"],
                                        {True: "yes", False: "**no**", None: "not measured"}[t["met"]], t["detail"]]
                                       for t in report["targets"]]), ""]
    if any(k.startswith("inference/") for k in r):
        parts += ["## Inference: EMENet-V logits (backbone + GRU heads)", "",
                  f"Batched: {cfg['batch']} frames per call; streaming: one frame per call with the hidden state, "
                  f"{cfg['stream_frames']} frames per repetition.", "", _inference_table(r, members_list), ""]
    if any(k.startswith("video") for k in r) or "long_video" in r:
        parts += ["## Video pipeline (decode, detect, track, align, predict, write CSV + MP4 + PNG)", ""]
        stages = r.get("video_stages")
        if _ok(stages):
            parts += [f"Stages on their own: decoding {stages['decode_frames_per_s']:.0f} frames/s; decoding + face "
                      f"detection and tracking {stages['decode_detect_track_frames_per_s']:.1f} frames/s "
                      f"({stages['num_frames']} frames).", ""]
            if "detect_align_blazeface_frames_per_s" in stages:
                w, h = stages["detect_align_size"]
                parts += [f"Face detection + 112x112 alignment alone ({w}x{h} frames, decoded beforehand): BlazeFace "
                          f"{stages['detect_align_blazeface_frames_per_s']:.0f} frames/s (without point refinement "
                          f"{stages['detect_align_blazeface_no_refine_frames_per_s']:.0f}), Haar cascade "
                          f"{stages['detect_align_haar_frames_per_s']:.0f} frames/s.", ""]
        parts += [_video_table(r, members_list), ""]
        if any(k.startswith("cold_start/") for k in r):
            parts += ["Cold start: seconds from the command (a new process) to the models being ready and to the first "
                      "predicted chunk of frames (after face detection over the whole video), with an empty export "
                      "cache (first use: ONNX export; int8 also quantisation and the accuracy gate, whose verdict is "
                      "cached) and with the cache that run filled:", "",
                      _cold_start_table(r, members_list), ""]
        longv = r.get("long_video")
        if _ok(longv):
            parts += ["Long synthetic video (the source's frames played forward and back), one model, default path, "
                      "after one unmeasured run of the shortest; the shortest holds more chunks of frames than the "
                      "pipeline keeps in flight, so both peaks include full queues:",
                      "", _table(["frames", "frames/s", "peak RSS MB"],
                                 [[str(x["num_frames"]), _f(x["frames_per_s"]), _f(x["peak_rss_mb"], 0)]
                                  for x in longv["runs"]]), ""]
    if any(k.startswith("train/") for k in r):
        parts += ["## Training step (forward, losses, backward, Adam; data in memory)", "", _train_table(r), ""]
        load = r.get("train/loader")
        if _ok(load):
            parts += ["Data loader alone (JPEG crops -> clips -> batches, " + f"{load['clips_per_task']} clips x "
                      f"{load['seq_len']} frames per task per step):", "",
                      _table(["workers", "steps", "frames/s", "peak RSS MB"],
                             [[str(x["workers"]), str(x["steps"]), _f(x["frames_per_s"], 0), _f(x["peak_rss_mb"], 0)]
                              for x in load["runs"]]), ""]
    ceil = r.get("ceiling")
    if _ok(ceil):
        parts += _ceiling_section(r, ceil, cfg["members"])
    for key, title in (("profile/onnx", "Profile: one exported backbone in ONNX Runtime, one batch (its profiler, "
                                        "kernel time by operator)"),
                       ("profile/onnx_int8", "Profile: one int8 backbone in ONNX Runtime, one batch (its profiler, "
                                             "kernel time by operator)"),
                       ("profile/inference", "Profile: fused ensemble backbones, one batch on one thread "
                                             "(torch.profiler, self CPU time)"),
                       ("profile/train", "Profile: fast teacher step (torch.profiler, self CPU time)"),
                       ("profile/train_compile", "Profile: fast teacher step with --compile (torch.profiler, self CPU "
                                                 "time)")):
        res = r.get(key)
        if _ok(res):
            parts += [f"## {title}", "",
                      _table(["op", "calls", "self CPU ms", "share"],
                             [[x["op"], str(x["calls"]), _f(x["self_cpu_ms"]), f"{100 * x['share']:.1f}%"]
                              for x in res["top_ops"]]), ""]
    return "\n".join(parts)
