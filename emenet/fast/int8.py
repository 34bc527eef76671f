"""The int8 accuracy gate: quantized predictions must decode like fp32 on synthetic validation faces.

A quantized backbone is accepted only when, on `num_frames` synthetic validation frames
(rendered faces with known valence/arousal, never the calibration frames):

- the decoded predictions agree with fp32 on at least `INT8_MIN_AGREEMENT` of the frames
  (a frame agrees when its expression and all 12 AU decisions are the same), and
- the VA concordance with the labels drops by at most `INT8_MAX_CCC_DROP` (valence and
  arousal separately: CCC(fp32, labels) - CCC(int8, labels)).

The faces come from the caller (emenet.fast.runners uses emenet.data.synth_validation), so this
module depends on no data generator.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from emenet.decoding import decode, task_probs
from emenet.evaluation.metrics import ccc

INT8_MIN_AGREEMENT = 0.99  # issue 6: decoded predictions agree with fp32 on >= 99% of frames
INT8_MAX_CCC_DROP = 0.01  # issue 6: VA CCC drops by at most 0.01
CALIBRATION_SEED = 1  # calibration and validation faces never overlap (different seeds)
VALIDATION_SEED = 2


@dataclass(frozen=True)
class GateResult:
    """How an int8 model's decoded predictions compare with fp32's on the validation faces."""

    num_frames: int
    agreement: float  # fraction of frames whose AU decisions and expression all agree
    ccc_drop: dict[str, float] = field(default_factory=dict)  # valence/arousal: fp32 CCC - int8 CCC
    min_agreement: float = INT8_MIN_AGREEMENT
    max_ccc_drop: float = INT8_MAX_CCC_DROP

    @property
    def passed(self) -> bool:
        return self.agreement >= self.min_agreement and all(d <= self.max_ccc_drop for d in self.ccc_drop.values())

    def summary(self) -> str:
        drops = ", ".join(f"{k} CCC drop {v:+.4f}" for k, v in self.ccc_drop.items())
        return (f"decoded predictions agree on {self.agreement:.2%} of {self.num_frames} frames "
                f"(need {self.min_agreement:.0%}){'; ' + drops if drops else ''} (max {self.max_ccc_drop})")

    def to_dict(self) -> dict:
        return {"num_frames": self.num_frames, "agreement": self.agreement, "ccc_drop": dict(self.ccc_drop),
                "min_agreement": self.min_agreement, "max_ccc_drop": self.max_ccc_drop, "passed": self.passed}


def _ccc_or_zero(x: np.ndarray, y: np.ndarray) -> float:
    value = ccc(x, y)
    return 0.0 if math.isnan(value) else value


def int8_gate(reference: dict[str, torch.Tensor], candidate: dict[str, torch.Tensor], va_labels: np.ndarray,
              min_agreement: float = INT8_MIN_AGREEMENT, max_ccc_drop: float = INT8_MAX_CCC_DROP) -> GateResult:
    """Compare the decoded predictions of two models' logits (task -> (N, C)) on the same N frames."""
    tasks = [t for t in ("AU", "EXPR", "VA") if t in reference]
    if not tasks or set(tasks) - set(candidate):
        raise ValueError(f"expected logits of the same emotion tasks, got {sorted(reference)} and {sorted(candidate)}")
    n = len(reference[tasks[0]])
    agree = np.ones(n, bool)
    for task in ("AU", "EXPR"):
        if task in tasks:
            a = decode(task, task_probs(task, reference[task].double())).numpy()
            b = decode(task, task_probs(task, candidate[task].double())).numpy()
            agree &= (a == b).reshape(n, -1).all(axis=1)
    drops = {}
    if "VA" in tasks:
        va_labels = np.asarray(va_labels, np.float64)
        ref_va = decode("VA", task_probs("VA", reference["VA"].double())).numpy()
        new_va = decode("VA", task_probs("VA", candidate["VA"].double())).numpy()
        for j, name in enumerate(("valence", "arousal")):
            drops[name] = _ccc_or_zero(ref_va[:, j], va_labels[:, j]) - _ccc_or_zero(new_va[:, j], va_labels[:, j])
    return GateResult(n, float(agree.mean()), drops, min_agreement, max_ccc_drop)
