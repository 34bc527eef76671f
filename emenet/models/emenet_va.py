"""EMENet-VA: EMENet's per-task temporal heads over visual (512) + audio (128) features per frame.

The key layout is the original's (reference README, section 4): `video_backbone.*` is the
MobileFaceNet of EMENet-V, `audio_backbone.*` NeMo's MarbleNet 3x2x64 without its decoder
(`preprocessor` + `encoder`, see `emenet.models.marblenet`), and `tmodels.{i}` one GRU
(640 -> 128) and Linear per task in the order EXPR, AU, VA, then the optional auxiliary
heads FA (face alignment, 136 outputs, as in EMENet-V) and VAD (voice activity, 2 logits over
NeMo's VAD labels (background, speech), the original's `VAD_teacher` distillation target).

Each video frame comes with a window of `audio_window` samples (default 10080: 0.63 s at
16 kHz) centred on it; `emenet.audio` cuts them from a video's audio track.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from emenet.errors import EMENetInputError
from emenet.models.emenet import EMENet, EMENetConfig
from emenet.models.marblenet import AUDIO_FEATURE_DIM, SAMPLE_RATE, MarbleNet
from emenet.models.mobilefacenet import FEATURE_DIM, MobileFaceNet

# 0.63 s at 16 kHz: the original's `window_size` 0.63 s times `sr` 16000.
DEFAULT_AUDIO_WINDOW = 10_080
# The STFT of the front end needs more samples than its reflect padding (n_fft // 2).
_MIN_AUDIO_WINDOW = 512 // 2 + 1


@dataclass(frozen=True)
class EMENetVAConfig(EMENetConfig):
    """EMENetConfig plus the audio input: samples per frame's window and their sample rate.

    The MarbleNet front end is fixed at 16 kHz (its filterbank is), so `sample_rate` is
    recorded for the data pipeline and checked, not a free choice.
    """

    audio_window: int = DEFAULT_AUDIO_WINDOW
    sample_rate: int = SAMPLE_RATE
    # Where each frame's window sits: exact, or legacy (the original's drifting timing, to run
    # its released checkpoints on the inputs they were trained with; emenet.audio_timing).
    audio_timing: str = "exact"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.audio_timing not in ("exact", "legacy"):
            raise EMENetInputError(f"audio_timing must be exact or legacy, got {self.audio_timing!r}")
        if self.sample_rate != SAMPLE_RATE:
            raise EMENetInputError(f"EMENet-VA's MarbleNet runs at {SAMPLE_RATE} Hz, got sample_rate={self.sample_rate}")
        if self.audio_window < _MIN_AUDIO_WINDOW:
            raise EMENetInputError(f"audio_window must be at least {_MIN_AUDIO_WINDOW} samples, got {self.audio_window}")

    @property
    def window_seconds(self) -> float:
        return self.audio_window / self.sample_rate


class EMENetVA(EMENet):
    """EMENet-VA: frames (B, T, 3, 112, 112) RGB in [0, 1] and audio (B, T, 10080) at 16 kHz.

    Returns per-task logits (B, T, C) and the heads' hidden states, like EMENet:

    >>> model = EMENetVA(EMENetVAConfig()).eval()
    >>> logits, hidden = model(torch.rand(1, 4, 3, 112, 112), torch.randn(1, 4, 10080) * 0.1)
    >>> logits["VA"].shape, hidden["AU"].shape
    (torch.Size([1, 4, 40]), torch.Size([1, 1, 128]))

    Streaming works as in EMENet: pass the returned `hidden` with the next frames and windows.
    """

    feature_dim = FEATURE_DIM + AUDIO_FEATURE_DIM  # 640: what the temporal heads see per frame
    uses_audio = True

    def __init__(self, config: EMENetVAConfig):
        if not isinstance(config, EMENetVAConfig):
            raise TypeError(f"EMENetVA needs an EMENetVAConfig, got {type(config).__name__}")
        super().__init__(config)

    def _build_encoders(self) -> None:
        """The original VA keys: `video_backbone` and `audio_backbone`, in this order (then `tmodels`)."""
        self.video_backbone = MobileFaceNet()
        self.audio_backbone = MarbleNet()

    @property
    def backbone(self) -> MobileFaceNet:
        """The frame encoder, under EMENet's name, so `encode_frames` and FA tooling work unchanged."""
        return self.video_backbone

    def encode_audio(self, audio: torch.Tensor) -> torch.Tensor:
        """Per-frame audio features (B, T, 128): MarbleNet over all B*T windows at once, time-averaged."""
        window = self.config.audio_window
        if audio.ndim != 3 or audio.shape[2] != window:
            raise ValueError(f"expected audio of shape (B, T, {window}), got {tuple(audio.shape)}")
        b, t = audio.shape[:2]
        return self.audio_backbone.features(audio.reshape(b * t, window)).view(b, t, -1)  # (B, T, 128)

    def encode(self, frames: torch.Tensor, audio: torch.Tensor | None = None) -> torch.Tensor:
        """Concatenated per-frame features (B, T, 640): visual 512 then audio 128."""
        if audio is None:
            raise EMENetInputError(f"an EMENet-VA model needs the audio window of every frame: audio of shape "
                                   f"(B, T, {self.config.audio_window})")
        visual = self.encode_frames(frames)  # (B, T, 512)
        sound = self.encode_audio(audio)  # (B, T, 128)
        if visual.shape[:2] != sound.shape[:2]:
            raise ValueError(f"frames and audio disagree on (B, T): {tuple(visual.shape[:2])} vs {tuple(sound.shape[:2])}")
        return torch.cat([visual, sound], dim=-1)
