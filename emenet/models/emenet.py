"""EMENet: a shared MobileFaceNet frame encoder and one temporal head per task."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from emenet.errors import EMENetInputError
from emenet.models.mobilefacenet import FEATURE_DIM, INPUT_SIZE, MobileFaceNet
from emenet.models.temporal import TEMPORAL_KINDS, Hidden, make_temporal_head
from emenet.tasks import EXPR_NAMES, check_expr_classes, num_logits, validate_tasks

SEQUENCE_LAYOUTS = ("batch_time", "legacy")
# Attention heads of the transformer head before `num_heads` was configurable (EMENet checkpoints
# whose config has no `num_heads` were built with it).
LEGACY_TRANSFORMER_HEADS = 4


@dataclass(frozen=True)
class EMENetConfig:
    """Everything needed to rebuild an EMENet model; stored in every checkpoint.

    `sequence_layout="legacy"` reproduces the original's batched numbers: its GRU took
    the batch axis for time (see the reference README); the correct layout is `batch_time`.
    `num_expr_classes` is 7 (2nd ABAW, the original's) or 8 (`Other`, 3rd ABAW on); `num_heads`
    is the attention heads of the `transformer` temporal model (the original's `nhead`).
    """

    tasks: tuple[str, ...] = ("EXPR", "AU", "VA")
    temporal_model: str = "GRU"
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.5
    sequence_layout: str = "batch_time"
    num_expr_classes: int = len(EXPR_NAMES)
    num_heads: int = 2  # the original's `nhead` default

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", validate_tasks(tuple(self.tasks)))
        object.__setattr__(self, "num_expr_classes", check_expr_classes(self.num_expr_classes))
        if self.temporal_model == "transformer" and (self.num_heads < 1 or self.hidden_size % self.num_heads):
            raise EMENetInputError(f"--nhead {self.num_heads} must be positive and divide --nhid {self.hidden_size}")
        if self.temporal_model not in TEMPORAL_KINDS:
            raise EMENetInputError(f"unknown temporal model {self.temporal_model!r}; valid ones are {list(TEMPORAL_KINDS)}")
        if self.sequence_layout not in SEQUENCE_LAYOUTS:
            raise EMENetInputError(f"unknown sequence layout {self.sequence_layout!r}; valid ones are {list(SEQUENCE_LAYOUTS)}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        return d

    def num_logits(self, task: str) -> int:
        """Logit width of `task`'s head (EXPR: 7 or 8 classes)."""
        return num_logits(task, self.num_expr_classes)

    @classmethod
    def from_dict(cls, d: dict) -> "EMENetConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise EMENetInputError(f"unknown {cls.__name__} fields {sorted(unknown)}")
        d = dict(d)
        if d.get("temporal_model") == "transformer" and "num_heads" not in d:
            d["num_heads"] = LEGACY_TRANSFORMER_HEADS  # checkpoints written before the field existed
        return cls(**{k: (tuple(v) if k == "tasks" else v) for k, v in d.items()})


class EMENet(nn.Module):
    """EMENet-V: frames (B, T, 3, 112, 112), RGB in [0, 1] -> per-task logits (B, T, C).

    Every registered model takes `model(frames, audio=None, hidden=None)` and returns
    (task -> logits, task -> hidden state); `uses_audio` says whether it needs `audio`, one
    window per frame (EMENet-VA); a model that does not hear ignores it, so one call serves an
    ensemble mixing both.

    >>> model = EMENet(EMENetConfig()).eval()
    >>> logits, hidden = model(torch.rand(1, 4, 3, 112, 112))
    >>> logits["VA"].shape, hidden["AU"].shape
    (torch.Size([1, 4, 40]), torch.Size([1, 1, 128]))
    >>> more, _ = model(torch.rand(1, 2, 3, 112, 112), hidden=hidden)  # streaming: carry `hidden`
    """

    feature_dim = FEATURE_DIM  # what the temporal heads see per frame
    uses_audio = False  # whether `forward` needs the audio window of every frame

    def __init__(self, config: EMENetConfig):
        super().__init__()
        self.config = config
        self._build_encoders()  # registered before the heads: the state-dict key order is the original's
        self.tmodels = nn.ModuleList(
            make_temporal_head(config.temporal_model, self.feature_dim, config.hidden_size, config.num_layers,
                               config.dropout, config.num_logits(t), config.num_heads)
            for t in config.tasks
        )

    def _build_encoders(self) -> None:
        """The per-frame encoders; EMENet-V has one, the MobileFaceNet `backbone`."""
        self.backbone = MobileFaceNet()

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.config.tasks

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Per-frame features (B, T, 512); the backbone runs over all B*T frames at once."""
        if frames.ndim != 5 or frames.shape[2:] != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"expected frames of shape (B, T, 3, {INPUT_SIZE}, {INPUT_SIZE}), got {tuple(frames.shape)}")
        b, t = frames.shape[:2]
        return self.backbone(frames.flatten(0, 1)).view(b, t, -1)

    def encode(self, frames: torch.Tensor, audio: torch.Tensor | None = None) -> torch.Tensor:
        """Per-frame features (B, T, feature_dim) the temporal heads see; EMENet-V ignores `audio`."""
        return self.encode_frames(frames)

    def forward_features(self, features: torch.Tensor, hidden: dict[str, Hidden] | None = None
                         ) -> tuple[dict[str, torch.Tensor], dict[str, Hidden]]:
        """Run the temporal heads on (B, T, F) features, carrying `hidden` (task -> state)."""
        hidden = hidden or {}
        legacy = self.config.sequence_layout == "legacy"
        if legacy:
            features = features.transpose(0, 1)  # the original's GRU recurred over the batch axis
        logits, new_hidden = {}, {}
        for task, head in zip(self.tasks, self.tmodels):
            out, new_hidden[task] = head(features, hidden.get(task))
            logits[task] = out.transpose(0, 1) if legacy else out
        return logits, new_hidden

    def forward(self, frames: torch.Tensor, audio: torch.Tensor | None = None, hidden: dict[str, Hidden] | None = None
                ) -> tuple[dict[str, torch.Tensor], dict[str, Hidden]]:
        if isinstance(audio, Mapping):  # the earlier model(frames, hidden): EMENet-V would drop the state
            raise TypeError("the hidden state goes by keyword: model(frames, audio=None, hidden=hidden)")
        return self.forward_features(self.encode(frames, audio), hidden)
