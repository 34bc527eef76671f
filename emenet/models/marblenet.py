"""MarbleNet 3x2x64 (Jia et al., 2021), natively in PyTorch, with NeMo's module and parameter names.

EMENet-VA's audio branch is NeMo's MarbleNet 3x2x64 classification model without its decoder:
an MFCC front end (`preprocessor`) and a stack of 1-D time-channel separable convolution
blocks (`encoder`). Every module here is named as in NeMo (nemo_toolkit 3.0.0,
`examples/asr/conf/marblenet/marblenet_3x2x64.yaml`), so a NeMo state dict and the
`audio_backbone.*` part of an original EMENet-VA checkpoint load unchanged under strict key
and shape checks:

    preprocessor.featurizer.dct_mat                        (64, 64)   DCT-II matrix, orthonormal
    preprocessor.featurizer.MelSpectrogram.spectrogram.window  (400,) periodic Hann window
    preprocessor.featurizer.MelSpectrogram.mel_scale.fb    (257, 64)  HTK mel filterbank, no norm
    encoder.encoder.{i}.mconv.{j}.conv.weight / .{j}.*      convolutions and batch norms
    encoder.encoder.{i}.res.0.{0,1}.*                       the residual 1x1 conv and batch norm

The front-end buffers are computed here, so a fresh model works without NeMo; loading a
checkpoint replaces them with the file's own (NeMo's, for the original checkpoints).

Conventions that reproduce NeMo (and the original EMENet-VA, see the shared reference README):
- the STFT is centred with reflect padding: 10080 samples (0.63 s) give 1 + 10080 // 160 = 64
  frames; the power spectrum goes through `fb`, then log(mel + 1e-6), then `dct_mat`. No
  dither and no per-batch normalisation, so a window's features do not depend on its batch.
- NeMo's valid length of a window of n samples is ceil(n / hop) frames, 63 for 10080, one
  less than the 64 frames the STFT makes. NeMo's masked convolutions zero every time step at
  or beyond the valid length in each convolution's *input* (depthwise, pointwise and
  residual); the outputs themselves are not masked, and EMENet-VA averages all 64 frames.

>>> net = MarbleNet().eval()
>>> net(torch.zeros(2, 10080)).shape  # (N, 128, 64) encoder output
torch.Size([2, 128, 64])
"""
from __future__ import annotations

import io
import logging
import math
import os
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import yaml
from torch import nn

from emenet.errors import EMENetInputError
from emenet.models.strict_load import load_state_dict_strict
from emenet.torch_files import load_torch_file

if TYPE_CHECKING:
    from emenet.models.spec_augment import SpecAugmentConfig

log = logging.getLogger(__name__)

AUDIO_FEATURE_DIM = 128  # channels of MarbleNet 3x2x64's last block
SAMPLE_RATE = 16_000
# log(mel + LOG_OFFSET): torchaudio's MFCC offset, which NeMo's AudioToMFCCPreprocessor uses.
LOG_OFFSET = 1e-6
# NeMo's JasperBlock batch norm: eps 1e-3, momentum 0.1.
BN_EPS = 1e-3
BN_MOMENTUM = 0.1
# What a NeMo checkpoint holds beyond the preprocessor and encoder: the classification decoder.
NEMO_DECODER_PREFIX = "decoder."


@dataclass(frozen=True)
class BlockSpec:
    """One NeMo `jasper` entry: `repeat` separable conv sub-blocks of `filters` channels."""

    filters: int
    repeat: int
    kernel: int
    dilation: int = 1
    residual: bool = False
    separable: bool = True


# examples/asr/conf/marblenet/marblenet_3x2x64.yaml: a prologue, B=3 residual blocks of
# R=2 sub-blocks with C=64 channels, and two epilogue blocks (dilated k29, then 1x1).
MARBLENET_3X2X64: tuple[BlockSpec, ...] = (
    BlockSpec(128, 1, 11),
    BlockSpec(64, 2, 13, residual=True),
    BlockSpec(64, 2, 15, residual=True),
    BlockSpec(64, 2, 17, residual=True),
    BlockSpec(128, 1, 29, dilation=2),
    BlockSpec(128, 1, 1, separable=False),
)


@dataclass(frozen=True)
class MFCCConfig:
    """NeMo's `AudioToMFCCPreprocessor` settings of marblenet_3x2x64.yaml."""

    sample_rate: int = SAMPLE_RATE
    window_size: float = 0.025  # s: 400 samples
    window_stride: float = 0.01  # s: 160 samples
    n_fft: int = 512
    n_mels: int = 64
    n_mfcc: int = 64

    @property
    def win_length(self) -> int:
        return int(round(self.window_size * self.sample_rate))

    @property
    def hop_length(self) -> int:
        return int(round(self.window_stride * self.sample_rate))


# ---------------------------------------------------------------------------------------
# Front end: fixed buffers, computed natively
# ---------------------------------------------------------------------------------------

def hann_window(length: int) -> torch.Tensor:
    """Periodic Hann window, 0.5 - 0.5 cos(2 pi n / length) (`torch.hann_window`'s default)."""
    return torch.hann_window(length, periodic=True, dtype=torch.float32)


def _hz_to_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)  # HTK mel scale


def _mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


# The buffers below are computed in float32 in the same order of operations as torchaudio's
# (which NeMo's preprocessor wraps), so a fresh model's buffers equal NeMo's bit for bit;
# tests/test_marblenet.py compares them with the ones in the original EMENet-VA checkpoint.

def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
                   ) -> torch.Tensor:
    """Triangular HTK mel filters, unnormalised: (n_freqs, n_mels), as multiplied from the right.

    Filter m rises from mel point m to m+1 and falls to m+2, on `n_mels + 2` points equally
    spaced in mel between f_min and f_max (default: Nyquist); frequencies of the one-sided
    spectrum are `linspace(0, sample_rate // 2, n_freqs)`.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    freqs = torch.linspace(0, sample_rate // 2, n_freqs)  # (F,)
    edges = _mel_to_hz(torch.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2))  # (M + 2,) in Hz
    widths = edges[1:] - edges[:-1]  # (M + 1,)
    offsets = edges[None, :] - freqs[:, None]  # (F, M + 2)
    rising = -offsets[:, :-2] / widths[:-1]
    falling = offsets[:, 2:] / widths[1:]
    return torch.clamp(torch.minimum(rising, falling), min=0.0)


def dct_matrix(n_mfcc: int, n_mels: int) -> torch.Tensor:
    """Orthonormal DCT-II as a (n_mels, n_mfcc) matrix: mfcc = log_mel @ dct."""
    n = torch.arange(float(n_mels))
    k = torch.arange(float(n_mfcc))[:, None]
    dct = torch.cos(math.pi / n_mels * (n + 0.5) * k)  # (n_mfcc, n_mels)
    dct[0] *= 1.0 / math.sqrt(2.0)
    dct *= math.sqrt(2.0 / n_mels)
    return dct.t().contiguous()


class _Spectrogram(nn.Module):
    def __init__(self, cfg: MFCCConfig):
        super().__init__()
        self.register_buffer("window", hann_window(cfg.win_length))


class _MelScale(nn.Module):
    def __init__(self, cfg: MFCCConfig):
        super().__init__()
        self.register_buffer("fb", mel_filterbank(cfg.n_fft // 2 + 1, cfg.n_mels, cfg.sample_rate))


class _MelSpectrogram(nn.Module):
    def __init__(self, cfg: MFCCConfig):
        super().__init__()
        self.spectrogram = _Spectrogram(cfg)
        self.mel_scale = _MelScale(cfg)


class MFCC(nn.Module):
    """Waveforms (N, samples) -> MFCC (N, n_mfcc, frames); NeMo's `featurizer` buffer layout."""

    def __init__(self, cfg: MFCCConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("dct_mat", dct_matrix(cfg.n_mfcc, cfg.n_mels))
        self.MelSpectrogram = _MelSpectrogram(cfg)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        spec = torch.stft(waveform, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
                          window=self.MelSpectrogram.spectrogram.window, center=True, pad_mode="reflect",
                          normalized=False, onesided=True, return_complex=True)  # (N, F, frames)
        power = spec.abs().pow(2.0)
        mel = torch.matmul(power.transpose(-1, -2), self.MelSpectrogram.mel_scale.fb)  # (N, frames, n_mels)
        return torch.matmul(torch.log(mel + LOG_OFFSET), self.dct_mat).transpose(-1, -2)  # (N, n_mfcc, frames)


class MFCCPreprocessor(nn.Module):
    """NeMo's `AudioToMFCCPreprocessor` in eval mode: features and NeMo's valid lengths."""

    def __init__(self, cfg: MFCCConfig = MFCCConfig()):
        super().__init__()
        self.featurizer = MFCC(cfg)

    @property
    def hop_length(self) -> int:
        return self.featurizer.cfg.hop_length

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # NeMo's valid length: ceil(samples / hop), one frame less than the centred STFT makes
        # when the window is a multiple of the hop (10080 samples: 63 of 64 frames).
        feature_lengths = torch.div(lengths + self.hop_length - 1, self.hop_length, rounding_mode="floor")
        with torch.autocast(waveform.device.type, enabled=False):
            features = self.featurizer(waveform.float())
        return features, feature_lengths


# ---------------------------------------------------------------------------------------
# Encoder: NeMo's ConvASREncoder of JasperBlocks with masked 1-D convolutions
# ---------------------------------------------------------------------------------------

def _time_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """(N, 1, steps) float mask: 1 before each sequence's valid length, 0 from it on."""
    return (torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]).unsqueeze(1)


class MaskedConv1d(nn.Module):
    """A bias-free 'same'-padded Conv1d (`.conv`, NeMo's name) whose input is zeroed past each valid length."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, dilation: int = 1, groups: int = 1):
        super().__init__()
        padding = dilation * (kernel - 1) // 2
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, padding=padding, dilation=dilation, groups=groups,
                              bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.conv(x * mask)  # stride 1 and 'same' padding: the valid lengths do not change


def _conv_bn(in_channels: int, out_channels: int, kernel: int, dilation: int, separable: bool) -> list[nn.Module]:
    """NeMo's `_get_conv_bn_layer`: [depthwise, pointwise, BN] when separable, else [conv, BN]."""
    if separable:
        convs = [MaskedConv1d(in_channels, in_channels, kernel, dilation, groups=in_channels),
                 MaskedConv1d(in_channels, out_channels, 1)]
    else:
        convs = [MaskedConv1d(in_channels, out_channels, kernel, dilation)]
    return convs + [nn.BatchNorm1d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)]


class JasperBlock(nn.Module):
    """`repeat` conv-BN sub-blocks (ReLU and dropout between them), a residual 1x1 conv-BN, ReLU.

    `mconv` keeps NeMo's flat layout, so parameter indices match: for repeat 2 and separable,
    [dw, pw, bn, relu, dropout, dw, pw, bn]; the last ReLU and dropout are `mout`.
    """

    def __init__(self, in_channels: int, spec: BlockSpec, dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(spec.repeat):
            layers += _conv_bn(channels, spec.filters, spec.kernel, spec.dilation, spec.separable)
            channels = spec.filters
            if i < spec.repeat - 1:
                layers += [nn.ReLU(), nn.Dropout(dropout)]
        self.mconv = nn.ModuleList(layers)
        # NeMo: res = ModuleList([ModuleList([MaskedConv1d 1x1, BN])]) for residual_mode 'add'
        self.res = nn.ModuleList([nn.ModuleList(_conv_bn(in_channels, spec.filters, 1, 1, separable=False))]) \
            if spec.residual else None
        self.mout = nn.Sequential(nn.ReLU(), nn.Dropout(dropout))

    @staticmethod
    def _run(layers: nn.ModuleList, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            x = layer(x, mask) if isinstance(layer, MaskedConv1d) else layer(x)
        return x

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self._run(self.mconv, x, mask)
        if self.res is not None:
            for res_layers in self.res:
                out = out + self._run(res_layers, x, mask)
        return self.mout(out)


class ConvASREncoder(nn.Module):
    """MFCC (N, feat_in, T) and valid lengths -> (N, 128, T); NeMo's `encoder.encoder.{i}`."""

    def __init__(self, feat_in: int = 64, blocks: tuple[BlockSpec, ...] = MARBLENET_3X2X64, dropout: float = 0.0):
        super().__init__()
        layers, channels = [], feat_in
        for spec in blocks:
            layers.append(JasperBlock(channels, spec, dropout))
            channels = spec.filters
        self.encoder = nn.ModuleList(layers)
        self.out_channels = channels

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mask = _time_mask(lengths, features.shape[-1]).to(features.dtype)  # (N, 1, T)
        x = features
        for block in self.encoder:
            x = block(x, mask)
        return x


class ClassificationDecoder(nn.Module):
    """NeMo's `ConvASRDecoderClassification` (average pooling over all frames, then a Linear)."""

    def __init__(self, feat_in: int, num_classes: int):
        super().__init__()
        self.decoder_layers = nn.Sequential(nn.Linear(feat_in, num_classes))

    def forward(self, encoded: torch.Tensor) -> torch.Tensor:
        return self.decoder_layers(encoded.mean(-1))


class MarbleNet(nn.Module):
    """MarbleNet 3x2x64: waveforms (N, samples) at 16 kHz -> encoder output (N, 128, frames).

    `num_classes` adds NeMo's classification decoder (`decoder.decoder_layers.0`), e.g. 2 for
    a voice-activity model with labels (background, speech); EMENet-VA has none.

    >>> net = MarbleNet().eval()
    >>> net.features(torch.zeros(3, 10080)).shape  # time-averaged, EMENet-VA's audio feature
    torch.Size([3, 128])
    """

    def __init__(self, mfcc: MFCCConfig = MFCCConfig(), blocks: tuple[BlockSpec, ...] = MARBLENET_3X2X64,
                 num_classes: int | None = None, dropout: float = 0.0):
        super().__init__()
        self.mfcc_config, self.blocks = mfcc, blocks
        self.preprocessor = MFCCPreprocessor(mfcc)
        self.encoder = ConvASREncoder(mfcc.n_mfcc, blocks, dropout)
        self.decoder = ClassificationDecoder(self.encoder.out_channels, num_classes) if num_classes else None

    @property
    def out_channels(self) -> int:
        return self.encoder.out_channels

    def _lengths(self, waveform: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        if waveform.ndim != 2:
            raise ValueError(f"expected waveforms of shape (N, samples), got {tuple(waveform.shape)}")
        if lengths is None:
            return torch.full((waveform.shape[0],), waveform.shape[1], dtype=torch.long, device=waveform.device)
        return lengths.to(device=waveform.device, dtype=torch.long)

    def mfcc(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """MFCC (N, 64, frames) and NeMo's valid lengths in frames."""
        return self.preprocessor(waveform, self._lengths(waveform, lengths))

    # Set by training (`--audio_augment specaugment`): NeMo's spectrogram augmentation, applied
    # in training mode only (emenet.models.spec_augment); not part of the checkpoint.
    spec_augment: "SpecAugmentConfig | None" = None

    def forward(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Encoder output (N, 128, frames); `lengths` are samples per waveform (default: all)."""
        features, feature_lengths = self.mfcc(waveform, lengths)
        if self.spec_augment is not None and self.training:
            from emenet.models.spec_augment import spec_augment
            features = spec_augment(features, feature_lengths, self.spec_augment)
        return self.encoder(features, feature_lengths)

    def features(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 128): the encoder output averaged over all its frames, padded ones included."""
        return self(waveform, lengths).mean(-1)

    def classify(self, waveform: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder logits (N, num_classes) of a model built with `num_classes`."""
        if self.decoder is None:
            raise ValueError("this MarbleNet has no decoder; build it with num_classes")
        return self.decoder(self(waveform, lengths))


# ---------------------------------------------------------------------------------------
# NeMo checkpoints
# ---------------------------------------------------------------------------------------

NEMO_WEIGHTS_NAME = "model_weights.ckpt"
NEMO_CONFIG_NAME = "model_config.yaml"


def _tar_member(tar: tarfile.TarFile, name: str) -> tarfile.TarInfo | None:
    for member in tar.getmembers():
        if member.isfile() and os.path.basename(member.name) == name:
            return member
    return None


def read_nemo_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None]:
    """The state dict (and the model config, where present) of a `.nemo` archive or a bare state dict.

    A `.nemo` file is a tar archive holding `model_weights.ckpt` (a `torch.save`d state dict)
    and `model_config.yaml`; both are read in memory, nothing is extracted to disk. Any other
    file is read with `torch.load(weights_only=True)` as a state dict, or a dict holding one
    under `state_dict`.
    """
    path = Path(path)
    if not path.is_file():
        raise EMENetInputError(f"{path}: NeMo model file not found")
    config = None
    try:
        if tarfile.is_tarfile(path):
            with tarfile.open(path) as tar:
                member = _tar_member(tar, NEMO_WEIGHTS_NAME)
                if member is None:
                    raise EMENetInputError(f"{path}: a tar archive without {NEMO_WEIGHTS_NAME}; not a .nemo model")
                data = io.BytesIO(tar.extractfile(member).read())
                config_member = _tar_member(tar, NEMO_CONFIG_NAME)
                if config_member is not None:
                    config = yaml.safe_load(tar.extractfile(config_member).read())
            state = load_torch_file(data, "NeMo model weights", f"{path}:{NEMO_WEIGHTS_NAME}")
        else:
            state = load_torch_file(path, "NeMo model")
    except EMENetInputError:
        raise
    except Exception as exc:  # corrupt archive, pickle with foreign objects, not a torch file
        raise EMENetInputError(f"{path}: not a readable NeMo model ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise EMENetInputError(f"{path}: holds no state dict of tensors")
    return state, config


def _first(value):
    return value[0] if isinstance(value, (list, tuple)) else value


def _check_nemo_config(config: dict, model: MarbleNet, source: str) -> None:
    """Kernel sizes and widths are checked by the state dict's shapes; dilations, residuals and
    the front end's settings only here. Unresolved `${...}` interpolations are skipped."""
    jasper = (config.get("encoder") or {}).get("jasper")
    if jasper:
        try:  # NeMo's ConvASREncoder defaults for keys a block leaves out
            found = tuple(BlockSpec(filters=int(_first(b["filters"])), repeat=int(_first(b["repeat"])),
                                    kernel=int(_first(b["kernel"])), dilation=int(_first(b.get("dilation", 1))),
                                    residual=bool(b.get("residual", False)), separable=bool(b.get("separable", False)))
                          for b in jasper)
        except (KeyError, TypeError, ValueError) as exc:
            raise EMENetInputError(f"{source}: unreadable encoder config ({type(exc).__name__}: {exc})") from None
        if found != model.blocks:
            raise EMENetInputError(f"{source}: encoder blocks {[asdict(b) for b in found]} are not MarbleNet's "
                                   f"{[asdict(b) for b in model.blocks]}")
    pre = config.get("preprocessor") or {}
    expected = asdict(model.mfcc_config)
    wrong = {k: pre[k] for k in expected
             if isinstance(pre.get(k), (int, float)) and not math.isclose(pre[k], expected[k])}
    if wrong:
        raise EMENetInputError(f"{source}: preprocessor settings {wrong} differ from MarbleNet's {expected}")


def load_nemo_marblenet(path: str | os.PathLike, num_classes: int | None = None) -> MarbleNet:
    """A MarbleNet 3x2x64 with the weights of a NeMo `.nemo` file or NeMo state dict, in eval mode.

    Keys map unchanged (ours are NeMo's). NeMo's classification decoder (`decoder.*`) is kept
    with `num_classes` (it must match the file) and dropped without; any other extra or
    missing key, or a shape mismatch, is refused with the names.

    >>> vad = load_nemo_marblenet("vad_marblenet.nemo", num_classes=2)  # doctest: +SKIP
    >>> speech_probability = vad.classify(windows).softmax(-1)[:, 1]  # doctest: +SKIP
    """
    state, config = read_nemo_file(path)
    model = MarbleNet(num_classes=num_classes)
    if config is not None:
        _check_nemo_config(config, model, str(path))
    if num_classes is None:
        dropped = [k for k in state if k.startswith(NEMO_DECODER_PREFIX)]
        if dropped:
            log.debug("%s: dropping NeMo's classification decoder %s", path, dropped)
        state = {k: v for k, v in state.items() if not k.startswith(NEMO_DECODER_PREFIX)}
    load_state_dict_strict(model, state, str(path))
    return model.eval()
