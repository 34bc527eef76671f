"""Model size and cost: parameters, and multiply-accumulates (MACs) per video frame.

MACs are measured with torch's own FLOP counter, `torch.utils.flop_counter.FlopCounterMode`,
on one forward pass, with MACs = FLOPs / 2. What that counter counts decides what "a MAC"
means here:

- convolutions: output elements x kernel area x input channels per group, so a depthwise
  3x3 convolution costs 9 MACs per output element (its weight is (C, 1, 3, 3));
- matrix products (`mm`, `addmm`, `bmm`): M x N x K, and attention: its two products
  (QK^T and AV) in full, causal mask or not;
- nothing else: batch norm, PReLU, residual additions, biases and the elementwise gate
  products of a recurrent cell are not counted.

Recurrent layers: on the CPU, PyTorch runs `nn.GRU` and `nn.RNN` as `addmm` calls (all
input projections at once, then one hidden projection per step), which the counter sees;
per time step and direction that is `G * (in * H + H * H)` MACs per layer (G = 3 gates for
a GRU, 4 for an LSTM, 1 for a plain RNN), 245,760 for EMENet's GRU(512 -> 128). An
`nn.LSTM` on the CPU (one oneDNN `mkldnn_rnn_layer` call per layer) and every recurrent
layer under cuDNN (one `_cudnn_rnn` call) are invisible to the counter: a recurrent module
in which the counter saw no work is counted with that same formula (`recurrent_macs`), and
the result says so in `recurrent_counted_by`.

The paper's figures for comparison are in `PAPER_REFERENCE`. Our count for EMENet-V is
221.6M MACs per frame against the paper's 228M: the backbone (MobileFaceNet trunk) is
220.9M, close to the 221M MAdds the MobileFaceNet paper (Chen et al., 2018) gives for its
network, and the three GRU heads 0.74M. The
6.3M difference equals, to rounding, one operation per output element of every batch norm
(3.21M per frame), PReLU (2.76M) and residual addition (0.36M), which some counting tools
add and torch's counter does not; that is a plausible reading of the paper's number, not
one its text confirms. EMENet-VA counts 228.7M against the paper's 234M: the same backbone,
6.88M for MarbleNet per 0.63 s window (1.31M of mel and DCT products, 5.57M of
convolutions; the STFT's FFT, about 0.6M real multiply-adds, is not counted) and 0.89M for
three GRU(640 -> 128) heads.

>>> report = model_report("emenet_v")
>>> report["params"], report["macs_per_frame"]["total"]
(1684539, 221644672)
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from emenet.models.mobilefacenet import INPUT_SIZE
from emenet.models.registry import create_model

log = logging.getLogger(__name__)

# Default clip length of the measurement. Every part of EMENet-V costs the same per frame
# whatever the length; only a transformer head's attention grows with it.
DEFAULT_SEQ_LEN = 8

_RECURRENT_GATES = {"GRU": 3, "LSTM": 4, "RNN_TANH": 1, "RNN_RELU": 1}


@dataclass(frozen=True)
class PaperReference:
    """One model's size and cost as the paper reports them (rounded there)."""

    paper_name: str
    params: int
    macs_per_frame: int


# Deng, Wu & Shi, "Iterative Distillation for Better Uncertainty Estimates in Multitask
# Emotion Recognition", ICCVW 2021 (arXiv 2108.04228): parameters and multiply-adds per
# frame of the two EMENets, as the paper rounds them (1.68M / 228M and 1.91M / 234M).
# The auxiliary face-alignment head (`emenet_v_aux`) is a training aid the paper does not
# size; its FA head adds 264,072 parameters and 0.26M MACs per frame. The original EMENet-VA
# checkpoint layout has 1,920,891 parameters (shared reference README), 1.92M, not 1.91M.
PAPER_REFERENCE: dict[str, PaperReference] = {
    "emenet_v": PaperReference("EMENet-V", 1_680_000, 228_000_000),
    "emenet_va": PaperReference("EMENet-VA", 1_910_000, 234_000_000),
}


def count_parameters(model: nn.Module) -> int:
    """Number of parameters, trainable or frozen (buffers such as BN statistics excluded).

    >>> count_parameters(nn.Linear(4, 3))
    15
    """
    return sum(p.numel() for p in model.parameters())


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """The counter's own attention formula (QK^T and AV), for the CPU attention kernel it lacks."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# Ops that torch's FLOP counter has no formula for but EMENet's heads can run: the CPU
# kernel behind `scaled_dot_product_attention` (a transformer head in eval mode).
_CPU_SDPA = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
_EXTRA_FLOP_FORMULAS = {_CPU_SDPA: _sdpa_flops} if _CPU_SDPA is not None else {}


def count_macs(module: nn.Module, *inputs: torch.Tensor) -> dict[str, int]:
    """MACs of one `module(*inputs)` pass, in total (`''`) and per submodule name.

    The keys are `named_modules()` names ('' for `module` itself, 'backbone.conv1', ...);
    a container whose `forward` is never called (e.g. an `nn.ModuleList`) has no entry,
    only its members do. Runs under `no_grad` with the module as it is (call `.eval()`
    first for inference numbers: dropout costs no MACs, but batch norm in training mode
    updates its statistics). The fused "fast path" of `nn.TransformerEncoderLayer`, one
    op the counter cannot see, is switched off for the pass.

    >>> count_macs(nn.Linear(4, 3, bias=False), torch.zeros(2, 4))['']
    24
    """
    root = type(module).__name__
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOP_FORMULAS)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad(), counter:
            module(*inputs)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    flops = {name: sum(by_op.values()) for name, by_op in counter.get_flop_counts().items()}
    # The counter names modules `<root class>.<path>`, plus a 'Global' entry for the total.
    macs = {"": flops.get("Global", 0) // 2}
    for name, _ in module.named_modules():
        if name and f"{root}.{name}" in flops:
            macs[name] = flops[f"{root}.{name}"] // 2
    return macs


def recurrent_macs(rnn: nn.RNNBase, seq_len: int, batch_size: int = 1) -> int:
    """MACs of the matrix products of `rnn` over `seq_len` steps of `batch_size` sequences.

    Per step, layer and direction: `G * (in * H + H_out * H)`, plus `H * P` for an LSTM's
    projection (`proj_size` P), with G = 3 (GRU), 4 (LSTM) or 1 (RNN) and H_out = P or H;
    `in` is the input size for the first layer and `H_out * directions` above it. The gate
    nonlinearities and elementwise products (a few H per step) are left out, as the FLOP
    counter leaves out every elementwise operation.

    >>> recurrent_macs(nn.GRU(512, 128), seq_len=1)
    245760
    """
    gates = _RECURRENT_GATES.get(rnn.mode)
    if gates is None:
        raise ValueError(f"unknown recurrent mode {rnn.mode!r}; expected one of {list(_RECURRENT_GATES)}")
    hidden, proj = rnn.hidden_size, getattr(rnn, "proj_size", 0)
    h_out = proj or hidden
    directions = 2 if rnn.bidirectional else 1
    per_step = 0
    for layer in range(rnn.num_layers):
        in_size = rnn.input_size if layer == 0 else h_out * directions
        per_step += directions * (gates * (in_size * hidden + h_out * hidden) + hidden * proj)
    return per_step * seq_len * batch_size


def _module_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def macs_per_frame(model: nn.Module, seq_len: int = DEFAULT_SEQ_LEN) -> dict:
    """MACs per frame of an EMENet, in total and split into backbone and temporal heads.

    Runs one (1, seq_len, 3, 112, 112) clip through `model` (on its own device) under
    `FlopCounterMode` and divides every count by `seq_len`. The split follows the model's
    top-level modules: `backbone` (the MobileFaceNet frame encoder) and `tmodels` (one
    temporal head per task, also given per task in `per_head`); `other` is whatever the
    counter saw outside both (0 for EMENet). An EMENet-VA (a model with `audio_backbone`)
    also gets a (1, seq_len, audio_window) clip of audio; its MarbleNet is reported as
    `audio_backbone`: the mel and DCT matrix products and the convolutions, not the FFT of
    its STFT (the counter has no FFT formula). Recurrent layers the counter cannot see (an
    LSTM on the CPU, any of them under cuDNN) are counted with `recurrent_macs`; see the
    module docstring. A transformer head's attention grows with the clip length, so its
    per-frame cost depends on `seq_len`; every other part's does not.

    >>> macs = macs_per_frame(create_model("emenet_v").eval(), seq_len=2)
    >>> macs["backbone"], macs["per_head"]
    (220899840, {'EXPR': 246656, 'AU': 247296, 'VA': 250880})
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be a positive number of frames, got {seq_len}")
    for part in ("backbone", "tmodels"):
        if not isinstance(getattr(model, part, None), nn.Module):
            raise ValueError(f"expected an EMENet with `backbone` and `tmodels`, got {type(model).__name__} without `{part}`")
    inputs = [torch.zeros(1, seq_len, 3, INPUT_SIZE, INPUT_SIZE, device=_module_device(model))]
    audio_backbone = isinstance(getattr(model, "audio_backbone", None), nn.Module)
    if audio_backbone:  # EMENet-VA: one audio window per frame
        inputs.append(torch.zeros(1, seq_len, model.config.audio_window, device=_module_device(model)))
    macs = count_macs(model, *inputs)

    counted_by = set()
    for name, module in model.named_modules():
        if not isinstance(module, nn.RNNBase):
            continue
        if macs.get(name, 0) > 0:
            counted_by.add("flop counter")
            continue
        missing = recurrent_macs(module, seq_len)
        log.debug("%s: the FLOP counter saw no work; adding %d MACs from the formula", name, missing)
        for prefix in _prefixes(name):  # the module itself and every enclosing one
            macs[prefix] = macs.get(prefix, 0) + missing
        counted_by.add("analytic formula")

    tasks = getattr(model, "tasks", tuple(str(i) for i in range(len(model.tmodels))))
    per_head = {task: macs.get(f"tmodels.{i}", 0) for i, task in enumerate(tasks)}
    # EMENet-VA's frame encoder is the module `video_backbone` (`backbone` is its alias)
    backbone = macs.get("video_backbone" if audio_backbone else "backbone", 0)
    audio = macs.get("audio_backbone", 0)
    heads, total = sum(per_head.values()), macs[""]
    result = {
        "seq_len": seq_len,
        "total": _per_frame(total, seq_len),
        "backbone": _per_frame(backbone, seq_len),
        "heads": _per_frame(heads, seq_len),
        "per_head": {task: _per_frame(m, seq_len) for task, m in per_head.items()},
        "other": _per_frame(total - backbone - audio - heads, seq_len),
        "recurrent_counted_by": " and ".join(sorted(counted_by)) or None,  # None: no recurrent layer
    }
    if audio_backbone:
        result["audio_backbone"] = _per_frame(audio, seq_len)
    return result


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [""] + [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _per_frame(macs: int, seq_len: int) -> int | float:
    """`macs / seq_len`, as an int when it divides exactly (it does for EMENet-V)."""
    return macs // seq_len if macs % seq_len == 0 else macs / seq_len


def model_report(name_or_model: str | nn.Module, seq_len: int = DEFAULT_SEQ_LEN, reference: str | None = None) -> dict:
    """Parameters and MACs per frame of a model, beside the paper's figures where it has them.

    `name_or_model` is a registered name (built with `create_model`, weights irrelevant) or
    a model. `reference` names the `PAPER_REFERENCE` entry to compare with; it defaults to
    the registered name, so `model_report(model)` has no paper figures unless given one.

    >>> report = model_report("emenet_v")
    >>> report["paper"]["paper_name"], report["params"] - report["paper"]["params"]
    ('EMENet-V', 4539)
    """
    explicit = reference is not None
    if isinstance(name_or_model, str):
        name, model = name_or_model, create_model(name_or_model)
        reference = reference if explicit else name
    else:
        name, model = type(name_or_model).__name__, name_or_model
    if explicit and reference not in PAPER_REFERENCE:
        raise ValueError(f"unknown paper reference {reference!r}; known ones are {list(PAPER_REFERENCE)}")
    paper = PAPER_REFERENCE.get(reference) if reference is not None else None

    was_training = model.training
    model.eval()
    try:
        macs = macs_per_frame(model, seq_len)
    finally:
        model.train(was_training)
    return {
        "model": name,
        "tasks": list(getattr(model, "tasks", ())),
        "params": count_parameters(model),
        "macs_per_frame": macs,
        "paper": asdict(paper) if paper is not None else None,
        "counting": "torch.utils.flop_counter.FlopCounterMode, MACs = FLOPs / 2: convolutions and matrix "
                    "products only (no batch norm, activations, residual additions or biases)",
    }


def format_report(report: dict) -> str:
    """A small text table of `model_report`'s result: ours beside the paper's figures.

    >>> print(format_report(model_report("emenet_v")).splitlines()[0])
    emenet_v (EXPR, AU, VA), MACs per frame measured on 8-frame clips
    """
    macs, paper = report["macs_per_frame"], report["paper"]
    rows = [("parameters", report["params"], paper["params"] if paper else None),
            ("MACs/frame, total", macs["total"], paper["macs_per_frame"] if paper else None),
            ("MACs/frame, backbone", macs["backbone"], None)]
    if "audio_backbone" in macs:
        rows.append(("MACs/frame, audio backbone", macs["audio_backbone"], None))
    rows.append(("MACs/frame, temporal heads", macs["heads"], None))
    rows += [(f"  head {task}", m, None) for task, m in macs["per_head"].items()]
    if macs["other"]:
        rows.append(("MACs/frame, other", macs["other"], None))
    paper_header = f"paper ({paper['paper_name']})" if paper else "paper"
    lines = [f"{report['model']} ({', '.join(report['tasks'])}), MACs per frame measured on {macs['seq_len']}-frame clips",
             f"{'':28s} {'ours':>14s} {paper_header:>18s}"]
    for label, ours, theirs in rows:
        theirs_text = f"{theirs / 1e6:g}M" if theirs is not None else "-"
        lines.append(f"{label:28s} {ours:>14,.0f} {theirs_text:>18s}")
    if not paper:
        lines.append("(the paper reports no figures for this model)")
    return "\n".join(lines)
