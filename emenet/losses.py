"""Training and distillation losses of EMENet, each returning a scalar tensor.

Callers flatten (B, T, C) to (N, C) first. Unannotated labels (AU/EXPR -1, VA -5 or NaN)
become an explicit mask here and never reach the arithmetic; a batch with no valid element
gives a zero loss that still carries a graph, so multitask batches where one task has no
labels need no special case. The teacher losses follow the original's train_teacher.py
options (`bce`, `ce`, `ccc`, `cce`, `cce+ccc`, `l1_loss`); the distillation losses follow
"The original's distillation losses" in the reference README.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F

from emenet.decoding import va_digitize, va_expectation, va_probs
from emenet.tasks import AU_MISSING, AU_NAMES, EXPR_MISSING, EXPR_NAMES, NUM_VA_BINS, VA_MISSING

# The original's AU positive-class weights for BCE (its `pos_weight`), in AU_NAMES order;
# they read as num_neg / num_pos ratios, the rule of au_pos_weight_from_labels.
AU_POS_WEIGHT: tuple[float, ...] = (23 / 3, 47 / 3, 21 / 4, 37 / 13, 3 / 2, 13 / 7, 3.0, 97 / 3, 97 / 3, 97 / 3,
                                    37 / 63, 23 / 2)
# The original's EXPR class weights for cross-entropy, in EXPR_NAMES order; they read as
# 1 / class frequency, the rule of expr_weight_from_labels.
EXPR_CLASS_WEIGHT: tuple[float, ...] = (2.5, 25.0, 40.0, 33.0, 4.0, 5.88, 12.5)


# Probabilities are clipped to at least this before a logarithm (the original's 1e-8).
PROB_CLIP = 1e-8
# Lower bound of the CCC denominator inside losses only, so that a batch of constant
# predictions and labels gives a finite loss instead of 0/0; exact whenever the
# denominator is larger (any real batch).
CCC_EPS = 1e-8

VA_LOSS_KINDS: tuple[str, ...] = ("ccc", "cce", "cce+ccc")

ArrayLike = torch.Tensor | np.ndarray | Sequence


# ----------------------------------------------------------------------------- validation

def _check_2d(name: str, x: torch.Tensor, width: int | None = None) -> None:
    if x.dim() != 2 or (width is not None and x.shape[1] != width):
        expected = f"(N, {width})" if width is not None else "(N, C)"
        raise ValueError(f"{name}: expected shape {expected}, got {tuple(x.shape)}")


def _check_same_shape(name: str, a: torch.Tensor, b: torch.Tensor, what: str = "logits and labels") -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name}: expected {what} of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def _check_row_mask(name: str, mask: torch.Tensor | None, n: int) -> torch.Tensor | None:
    if mask is None:
        return None
    if mask.shape != (n,):
        raise ValueError(f"{name}: expected a row mask of shape ({n},), got {tuple(mask.shape)}")
    return mask.bool()


def _check_temperature(name: str, T: float) -> None:
    if not (T > 0 and math.isfinite(T)):
        raise ValueError(f"{name}: expected a temperature T > 0, got {T}")


def _as_class_vector(name: str, values: ArrayLike | None, size: int, like: torch.Tensor) -> torch.Tensor | None:
    if values is None:
        return None
    vec = torch.as_tensor(values, dtype=like.dtype, device=like.device)
    if vec.shape != (size,):
        raise ValueError(f"{name}: expected {size} per-class weights, got shape {tuple(vec.shape)}")
    return vec


def _zero_loss(like: torch.Tensor) -> torch.Tensor:
    """A zero that keeps `like` in the graph, for batches without a valid element."""
    return like.sum() * 0.0


def _weighted_frame_mean(name: str, per_frame: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-frame terms (N,), or sum(w * term) / sum(w) with per-frame weights."""
    if weight is None:
        return per_frame.mean()
    weight = weight.to(per_frame)
    if weight.shape != per_frame.shape:
        raise ValueError(f"{name}: expected per-frame weights of shape {tuple(per_frame.shape)}, "
                         f"got {tuple(weight.shape)}")
    total = weight.sum()
    if bool(total <= 0):
        return _zero_loss(per_frame)
    return (weight * per_frame).sum() / total


# ------------------------------------------------------------------- weights from labels

def au_pos_weight_from_labels(labels: ArrayLike) -> torch.Tensor:
    """Per-AU BCE pos_weight = num_neg / num_pos over annotated entries of (N, 12) labels.

    The rule behind AU_POS_WEIGHT, for recomputing it on another training set. -1 entries
    are unannotated and ignored. An AU that has no positive or no negative entry carries no
    ratio to learn from and gets a neutral 1.0.

    >>> au_pos_weight_from_labels(torch.tensor([[1] * 12, [0] * 12, [0] * 12, [-1] * 12]))[0]
    tensor(2.)
    """
    labels = torch.as_tensor(labels)
    _check_2d("au_pos_weight_from_labels", labels, len(AU_NAMES))
    pos = (labels == 1).sum(dim=0).double()
    neg = (labels == 0).sum(dim=0).double()
    ratio = torch.where((pos > 0) & (neg > 0), neg / pos.clamp(min=1), torch.ones_like(pos))
    return ratio.float()


def expr_weight_from_labels(labels: ArrayLike, num_classes: int = len(EXPR_NAMES)) -> torch.Tensor:
    """Per-class CE weight = N / n_c (inverse class frequency) over annotated (N,) labels.

    The rule behind EXPR_CLASS_WEIGHT (its entries read as 1 / frequency, rounded).
    -1 labels are ignored. An absent class counts as one example (weight N), which is
    harmless: a class weight only acts through the frames of that class.

    >>> expr_weight_from_labels(torch.tensor([0, 0, 0, 1, -1]), num_classes=2)
    tensor([1.3333, 4.0000])
    """
    labels = torch.as_tensor(labels)
    if labels.dim() != 1:
        raise ValueError(f"expr_weight_from_labels: expected shape (N,), got {tuple(labels.shape)}")
    valid = labels[labels != EXPR_MISSING].long()
    if valid.numel() and (valid.min() < 0 or valid.max() >= num_classes):
        raise ValueError(f"expr_weight_from_labels: expected labels in 0..{num_classes - 1} or -1, "
                         f"got values in [{int(valid.min())}, {int(valid.max())}]")
    counts = torch.bincount(valid, minlength=num_classes).double()
    return (max(valid.numel(), 1) / counts.clamp(min=1)).float()


# ------------------------------------------------------------------------- teacher losses

def au_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None,
            pos_weight: ArrayLike | None = None) -> torch.Tensor:
    """Binary cross-entropy with logits (`bce`), mean over annotated AU entries.

    labels (N, C) in {0, 1}, -1 = unannotated; `mask` (N, C) or a row mask (N,) removes more
    entries. `pos_weight` (C,) scales the positive term (the original passed AU_POS_WEIGHT);
    None leaves BCE unweighted.

    >>> au_loss(torch.zeros(2, 12), torch.tensor([[1] * 12, [-1] * 12]))
    tensor(0.6931)
    """
    _check_2d("au_loss", logits)
    _check_same_shape("au_loss", logits, labels)
    if not bool(((labels == 0) | (labels == 1) | (labels == AU_MISSING)).all()):
        raise ValueError(f"au_loss: expected labels in {{0, 1, {AU_MISSING}}}, got {torch.unique(labels).tolist()}")
    valid = labels != AU_MISSING
    if mask is not None:
        mask = mask.bool()
        if mask.shape == (labels.shape[0],):
            mask = mask[:, None]
        elif mask.shape != labels.shape:
            raise ValueError(f"au_loss: expected mask of shape {tuple(labels.shape)} or ({labels.shape[0]},), "
                             f"got {tuple(mask.shape)}")
        valid = valid & mask
    pw = _as_class_vector("au_loss pos_weight", pos_weight, logits.shape[1], logits)
    if not bool(valid.any()):
        return _zero_loss(logits)
    target = labels.clamp(min=0).to(logits.dtype)
    per_entry = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw, reduction="none")
    per_entry = torch.where(valid, per_entry, torch.zeros_like(per_entry))
    return per_entry.sum() / valid.sum()


def expr_loss(logits: torch.Tensor, labels: torch.Tensor, weight: ArrayLike | None = None,
              mask: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy (`ce`) with optional class weights; -1 labels (and `mask`-ed rows) ignored.

    With `weight` this is torch's CrossEntropyLoss(weight=...) mean: sum(w_y * nll) / sum(w_y),
    as the original used it (with EXPR_CLASS_WEIGHT).

    >>> expr_loss(torch.zeros(2, 7), torch.tensor([3, -1]))
    tensor(1.9459)
    """
    _check_2d("expr_loss", logits)
    if labels.shape != (logits.shape[0],):
        raise ValueError(f"expr_loss: expected labels of shape ({logits.shape[0]},), got {tuple(labels.shape)}")
    num_classes = logits.shape[1]
    labels = labels.long()
    if not bool((((labels >= 0) & (labels < num_classes)) | (labels == EXPR_MISSING)).all()):
        raise ValueError(f"expr_loss: expected labels in 0..{num_classes - 1} or {EXPR_MISSING}, "
                         f"got {torch.unique(labels).tolist()}")
    valid = labels != EXPR_MISSING
    row_mask = _check_row_mask("expr_loss", mask, logits.shape[0])
    if row_mask is not None:
        valid = valid & row_mask
    w = _as_class_vector("expr_loss weight", weight, num_classes, logits)
    if not bool(valid.any()):
        return _zero_loss(logits)
    return F.cross_entropy(logits[valid], labels[valid], weight=w)


def concordance_cc(x: torch.Tensor, y: torch.Tensor, dim: int = 0, weight: torch.Tensor | None = None,
                   eps: float = 0.0) -> torch.Tensor:
    """Concordance correlation coefficient along `dim`, population (ddof 0) form.

    CCC = 2 cov / (var_x + var_y + (mean_x - mean_y)^2), with variances and covariance
    divided by n: the challenge's definition. The original used ddof 1 in its loss and
    ddof 0 in its metric; we use ddof 0 in both, so the loss optimises the reported score.
    With `weight` (the length of `dim`), means, variances and covariance are weighted
    averages (weights normalised to sum 1); equal weights give the plain CCC. `eps` is a
    lower bound on the denominator (the losses use CCC_EPS to stay finite on constant inputs).

    >>> concordance_cc(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 4.0]))
    tensor(0.8571)
    """
    _check_same_shape("concordance_cc", x, y, "x and y")
    if x.dim() == 0 or x.shape[dim] == 0:
        raise ValueError(f"concordance_cc: expected at least one element along dim {dim}, got shape {tuple(x.shape)}")
    n = x.shape[dim]
    if weight is None:
        w = torch.full((n,), 1.0 / n, dtype=x.dtype, device=x.device)
    else:
        if weight.shape != (n,):
            raise ValueError(f"concordance_cc: expected weights of shape ({n},), got {tuple(weight.shape)}")
        w = weight.to(x) / weight.to(x).sum()
    shape = [1] * x.dim()
    shape[dim] = n
    w = w.reshape(shape)
    mean_x = (w * x).sum(dim=dim, keepdim=True)
    mean_y = (w * y).sum(dim=dim, keepdim=True)
    dx, dy = x - mean_x, y - mean_y
    var_x = (w * dx * dx).sum(dim=dim)
    var_y = (w * dy * dy).sum(dim=dim)
    cov = (w * dx * dy).sum(dim=dim)
    mean_gap = (mean_x - mean_y).squeeze(dim)
    return 2.0 * cov / (var_x + var_y + mean_gap ** 2).clamp(min=eps)


CCC_FORMS = ("sample", "population")


def sample_concordance_cc(x: torch.Tensor, y: torch.Tensor, dim: int = 0, eps: float = CCC_EPS) -> torch.Tensor:
    """The CCC of the original's losses: sample standard deviations (ddof 1) and its epsilon.

    CCC = 2 rho s_x s_y / (s_x^2 + s_y^2 + (mean_x - mean_y)^2 + eps), with
    rho = sum(dx dy) / (sqrt(sum dx^2) sqrt(sum dy^2) + eps) and s the ddof-1 standard deviation,
    as the original's CCCLoss wrote it. With one element (no sample deviation) it uses n.
    Square roots are taken of sums clamped at 1e-30, so constant inputs give finite gradients.

    >>> round(float(sample_concordance_cc(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.0, 4.0]))), 4)
    0.871
    """
    _check_same_shape("sample_concordance_cc", x, y, "x and y")
    n = x.shape[dim]
    dx, dy = x - x.mean(dim=dim, keepdim=True), y - y.mean(dim=dim, keepdim=True)
    sxx, syy, sxy = (dx * dx).sum(dim=dim), (dy * dy).sum(dim=dim), (dx * dy).sum(dim=dim)
    root_x, root_y = sxx.clamp(min=1e-30).sqrt(), syy.clamp(min=1e-30).sqrt()
    rho = sxy / (root_x * root_y + eps)
    dof = max(n - 1, 1)
    s_x, s_y = root_x / dof ** 0.5, root_y / dof ** 0.5
    gap = x.mean(dim=dim) - y.mean(dim=dim)
    return 2.0 * rho * s_x * s_y / (s_x ** 2 + s_y ** 2 + gap ** 2 + eps)


def _loss_ccc(x: torch.Tensor, y: torch.Tensor, form: str, weight: torch.Tensor | None = None) -> torch.Tensor:
    """CCC along dim 0 for a loss: `sample` (the original's) or `population` (the challenge metric's).
    Weighted CCCs always use weighted averages (concordance_cc)."""
    if form not in CCC_FORMS:
        raise ValueError(f"unknown CCC form {form!r}; valid ones are {list(CCC_FORMS)}")
    if form == "sample" and weight is None:
        return sample_concordance_cc(x, y, dim=0)
    return concordance_cc(x, y, dim=0, weight=weight, eps=CCC_EPS)


def _va_valid_rows(name: str, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    _check_2d(name, logits, 2 * NUM_VA_BINS)
    if labels.shape != (logits.shape[0], 2):
        raise ValueError(f"{name}: expected labels of shape ({logits.shape[0]}, 2), got {tuple(labels.shape)}")
    missing = (labels == VA_MISSING) | torch.isnan(labels)
    valid = ~missing.any(dim=1)
    in_range = (labels >= -1.0) & (labels <= 1.0)
    if not bool((in_range.all(dim=1) | ~valid).all()):
        bad = labels[valid & ~in_range.all(dim=1)]
        raise ValueError(f"{name}: expected labels in [-1, 1] or {VA_MISSING:g}/NaN, got e.g. {bad[:3].tolist()}")
    row_mask = _check_row_mask(name, mask, logits.shape[0])
    return valid if row_mask is None else valid & row_mask


def va_loss(logits: torch.Tensor, labels: torch.Tensor, kind: str = "ccc",
            mask: torch.Tensor | None = None, ccc_form: str = "sample") -> torch.Tensor:
    """VA loss on (N, 40) logits and (N, 2) labels; rows labelled -5 or NaN (or masked) excluded.

    `ccc`: (1 - CCC valence) + (1 - CCC arousal) of the 20-bin softmax expectation, over the
    valid rows of the batch. `cce`: cross-entropy of each dimension's 20 logits against the
    digitised label (decoding.va_digitize), summed over the two dimensions. `cce+ccc`: their
    sum (an option of the original, whose default is `ccc`). `ccc_form`: `sample` (ddof 1, the original's loss) or
    `population` (ddof 0, the challenge metric's); see sample_concordance_cc.
    """
    if kind not in VA_LOSS_KINDS:
        raise ValueError(f"va_loss: unknown kind {kind!r}; valid kinds are {list(VA_LOSS_KINDS)}")
    valid = _va_valid_rows("va_loss", logits, labels, mask)
    if not bool(valid.any()):
        return _zero_loss(logits)
    logits, labels = logits[valid], labels[valid].to(logits.dtype)
    loss = _zero_loss(logits)
    if "ccc" in kind.split("+"):
        pred = va_expectation(va_probs(logits))  # (n, 2)
        loss = loss + (1.0 - _loss_ccc(pred, labels, ccc_form)).sum()
    if "cce" in kind.split("+"):
        classes = va_digitize(labels)  # (n, 2)
        per_dim = logits.unflatten(-1, (2, NUM_VA_BINS))  # (n, 2, 20)
        loss = loss + F.cross_entropy(per_dim[:, 0], classes[:, 0]) + F.cross_entropy(per_dim[:, 1], classes[:, 1])
    return loss


def fa_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Face-alignment head loss (`l1_loss`): mean absolute error to the frozen landmark teacher."""
    _check_same_shape("fa_loss", pred, target, "pred and target")
    return F.l1_loss(pred, target)


# -------------------------------------------------------------------- distillation losses

def soften_bernoulli(probs: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """sigmoid(logit(p) / T), with p clipped by PROB_CLIP inside each logarithm."""
    logit = torch.log(probs.clamp(min=PROB_CLIP)) - torch.log((1.0 - probs).clamp(min=PROB_CLIP))
    return torch.sigmoid(logit / T)


def soften_categorical(probs: torch.Tensor, T: float = 1.0) -> torch.Tensor:
    """softmax(log(p) / T) over the last axis, with p clipped by PROB_CLIP before the logarithm."""
    return torch.softmax(torch.log(probs.clamp(min=PROB_CLIP)) / T, dim=-1)


def au_distill_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, T: float = 1.0,
                    weight: torch.Tensor | None = None) -> torch.Tensor:
    """BCE with logits between student_logits / T and sigmoid(logit(p) / T) of the soft labels.

    Mean over all (N, 12) entries; with per-frame `weight` (N,) the weighted mean
    sum_n w_n mean_c BCE_nc / sum_n w_n.
    """
    name = "au_distill_loss"
    _check_2d(name, student_logits)
    _check_same_shape(name, student_logits, teacher_probs, "student logits and teacher probabilities")
    _check_temperature(name, T)
    target = soften_bernoulli(teacher_probs.detach().to(student_logits.dtype), T)
    per_entry = F.binary_cross_entropy_with_logits(student_logits / T, target, reduction="none")
    return _weighted_frame_mean(name, per_entry.mean(dim=1), weight)


def expr_distill_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, T: float = 1.0,
                      weight: torch.Tensor | None = None) -> torch.Tensor:
    """KL(softmax(log(p) / T) || softmax(student / T)), batch mean (torch's `batchmean`).

    With per-frame `weight` (N,) the weighted mean sum_n w_n KL_n / sum_n w_n.
    """
    name = "expr_distill_loss"
    _check_2d(name, student_logits)
    _check_same_shape(name, student_logits, teacher_probs, "student logits and teacher probabilities")
    _check_temperature(name, T)
    target = soften_categorical(teacher_probs.detach().to(student_logits.dtype), T)
    log_q = torch.log_softmax(student_logits / T, dim=1)
    per_frame = (torch.special.xlogy(target, target) - target * log_q).sum(dim=1)  # (N,)
    return _weighted_frame_mean(name, per_frame, weight)


def va_distill_loss(student_logits: torch.Tensor, teacher_probs: torch.Tensor, T: float = 1.0,
                    weight: torch.Tensor | None = None, ccc_form: str = "sample") -> torch.Tensor:
    """(1 - CCC valence) + (1 - CCC arousal) between student and soft-label expectations.

    The student side is the expectation of its untempered 20-bin softmax, the teacher side
    the expectation of softmax(log(p) / T) over the soft label's bins (both the original's).
    With per-frame `weight` (N,) the CCC is weighted: weighted means, variances and
    covariance (see concordance_cc); equal weights give the plain CCC. Unweighted, `ccc_form`
    chooses the sample (ddof 1, the original's) or population CCC.
    """
    name = "va_distill_loss"
    _check_2d(name, student_logits, 2 * NUM_VA_BINS)
    if teacher_probs.shape != (student_logits.shape[0], 2, NUM_VA_BINS):
        raise ValueError(f"{name}: expected teacher probabilities of shape "
                         f"({student_logits.shape[0]}, 2, {NUM_VA_BINS}), got {tuple(teacher_probs.shape)}")
    _check_temperature(name, T)
    if weight is not None:
        if weight.shape != (student_logits.shape[0],):
            raise ValueError(f"{name}: expected per-frame weights of shape ({student_logits.shape[0]},), "
                             f"got {tuple(weight.shape)}")
        if bool(weight.sum() <= 0):
            return _zero_loss(student_logits)
    student = va_expectation(va_probs(student_logits))  # (N, 2)
    teacher = va_expectation(soften_categorical(teacher_probs.detach().to(student_logits.dtype), T))  # (N, 2)
    return (1.0 - _loss_ccc(student, teacher, ccc_form, weight)).sum()


def vad_distill_loss(student_logits: torch.Tensor, speech_prob: torch.Tensor,
                     weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary KL(teacher || student) of the voice-activity head, mean over frames.

    `student_logits` (N, 2) are the VAD head's logits over (background, speech); `speech_prob`
    (N,) the fixed teacher's speech probability p. Per frame, with q = softmax(logits)[:, 1]:
    p log(p / q) + (1 - p) log((1 - p) / (1 - q)), computed from log_softmax (0 log 0 = 0).
    With per-frame `weight` (N,) the weighted mean sum_n w_n KL_n / sum_n w_n.
    """
    name = "vad_distill_loss"
    _check_2d(name, student_logits, 2)
    if speech_prob.shape != (student_logits.shape[0],):
        raise ValueError(f"{name}: expected teacher probabilities of shape ({student_logits.shape[0]},), "
                         f"got {tuple(speech_prob.shape)}")
    p = speech_prob.detach().to(student_logits.dtype).clamp(0.0, 1.0)
    target = torch.stack([1.0 - p, p], dim=1)  # (N, 2) over (background, speech)
    log_q = torch.log_softmax(student_logits, dim=1)
    per_frame = (torch.special.xlogy(target, target) - target * log_q).sum(dim=1)  # (N,)
    return _weighted_frame_mean(name, per_frame, weight)


# ------------------------------------------------------------------------------ registry

# Loss names of the original's command-line options, and the task each one serves.
LOSSES: Mapping[str, Callable[..., torch.Tensor]] = MappingProxyType({
    "bce": au_loss,
    "ce": expr_loss,
    "ccc": partial(va_loss, kind="ccc"),
    "cce": partial(va_loss, kind="cce"),
    "cce+ccc": partial(va_loss, kind="cce+ccc"),
    "l1_loss": fa_loss,
})
LOSS_TASKS: Mapping[str, str] = MappingProxyType({"bce": "AU", "ce": "EXPR", "ccc": "VA", "cce": "VA",
                                                  "cce+ccc": "VA", "l1_loss": "FA"})
# The original train_teacher.py defaults (--loss_AU, --loss_EXPR, --loss_VA, --loss_FA).
DEFAULT_LOSS_NAMES: Mapping[str, str] = MappingProxyType({"AU": "bce", "EXPR": "ce", "VA": "ccc",
                                                          "FA": "l1_loss"})
DISTILL_LOSSES: Mapping[str, Callable[..., torch.Tensor]] = MappingProxyType({
    "AU": au_distill_loss, "EXPR": expr_distill_loss, "VA": va_distill_loss})


def check_loss_name(task: str, name: str) -> None:
    """Raise a one-line ValueError, listing the valid names, unless `name` is a loss for `task`."""
    get_loss(name, task)


def get_loss(name: str, task: str | None = None) -> Callable[..., torch.Tensor]:
    """The loss function behind an option name; with `task`, also check it suits that task.

    >>> get_loss("cce+ccc", task="VA")(torch.zeros(4, 40), torch.tensor([[0.1, 0.2]] * 4)).shape
    torch.Size([])
    """
    if task is not None:
        valid = [n for n, t in LOSS_TASKS.items() if t == task]
        if not valid:
            raise ValueError(f"unknown task {task!r}; tasks with losses are {sorted(set(LOSS_TASKS.values()))}")
        if name not in valid:
            raise ValueError(f"unknown {task} loss {name!r}; valid names are {valid}")
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names are {list(LOSSES)}")
    return LOSSES[name]
