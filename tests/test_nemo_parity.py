"""Our native MarbleNet against NeMo's own: the same weights give the same MFCC and encoder outputs.

NeMo's `EncDecClassificationModel` is built from the marblenet_3x2x64 configuration (nothing is
downloaded), its batch-norm statistics are perturbed so that they matter, and its state dict is
loaded into ours strictly. Both then run on real audio: windows of `utterance_1.mp4`'s track.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emenet.models.marblenet import MARBLENET_3X2X64, MarbleNet, MFCCConfig
from model_helpers import perturb_batch_norms


def _nemo_config(mfcc: MFCCConfig, num_classes: int) -> dict:
    def block(spec) -> dict:
        return {"filters": spec.filters, "repeat": spec.repeat, "kernel": [spec.kernel], "stride": [1],
                "dilation": [spec.dilation], "dropout": 0.0, "residual": spec.residual, "separable": spec.separable}
    return {
        "sample_rate": mfcc.sample_rate, "labels": [f"class_{i}" for i in range(num_classes)],
        "preprocessor": {"_target_": "nemo.collections.asr.modules.AudioToMFCCPreprocessor",
                         "window_size": mfcc.window_size, "window_stride": mfcc.window_stride, "window": "hann",
                         "n_mels": mfcc.n_mels, "n_mfcc": mfcc.n_mfcc, "n_fft": mfcc.n_fft},
        "encoder": {"_target_": "nemo.collections.asr.modules.ConvASREncoder", "feat_in": mfcc.n_mfcc,
                    "activation": "relu", "conv_mask": True, "jasper": [block(s) for s in MARBLENET_3X2X64]},
        "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoderClassification",
                    "feat_in": MARBLENET_3X2X64[-1].filters, "num_classes": num_classes, "return_logits": True,
                    "pooling_type": "avg"},
    }


@pytest.fixture(scope="module")
def nemo_and_ours(require_extra):
    require_extra("nemo.collections.asr", "nemo")
    from omegaconf import OmegaConf
    from nemo.collections.asr.models import EncDecClassificationModel
    torch.manual_seed(0)
    nemo = EncDecClassificationModel(cfg=OmegaConf.create(_nemo_config(MFCCConfig(), 2)))
    perturb_batch_norms(nemo)  # non-trivial batch norms, as in a trained model
    nemo.eval()
    ours = MarbleNet(num_classes=2)
    ours.load_state_dict(nemo.state_dict(), strict=True)  # NeMo's names, unchanged
    return nemo, ours.eval()


@pytest.fixture(scope="module")
def real_windows(shared_dir) -> torch.Tensor:
    from emenet.audio import video_audio_windows
    windows = video_audio_windows(shared_dir / "data" / "utterance_1.mp4", frames=np.arange(0, 300, 37))
    assert np.abs(windows).max() > 0.01, "expected speech in the real video's windows"
    return torch.from_numpy(windows)  # (9, 10080), 16 kHz


def test_state_dict_keys_and_shapes_are_the_same(nemo_and_ours):
    nemo, ours = nemo_and_ours
    assert {k: tuple(v.shape) for k, v in nemo.state_dict().items()} == \
           {k: tuple(v.shape) for k, v in ours.state_dict().items()}


@torch.inference_mode()
def test_mfcc_features_equal_nemos_on_real_audio(nemo_and_ours, real_windows):
    nemo, ours = nemo_and_ours
    lengths = torch.full((len(real_windows),), real_windows.shape[1])
    theirs, their_lengths = nemo.preprocessor(input_signal=real_windows, length=lengths)
    mine, my_lengths = ours.mfcc(real_windows)
    assert mine.shape == theirs.shape == (len(real_windows), 64, 64)
    assert torch.equal(my_lengths.long(), their_lengths.long())
    torch.testing.assert_close(mine, theirs, atol=1e-4, rtol=1e-6)  # bit-exact here; values reach ~110


@torch.inference_mode()
def test_encoder_and_decoder_outputs_equal_nemos_on_real_audio(nemo_and_ours, real_windows):
    nemo, ours = nemo_and_ours
    lengths = torch.full((len(real_windows),), real_windows.shape[1])
    features, feature_lengths = nemo.preprocessor(input_signal=real_windows, length=lengths)
    theirs, _ = nemo.encoder(audio_signal=features, length=feature_lengths)
    mine = ours(real_windows)
    assert mine.shape == theirs.shape == (len(real_windows), 128, 64)
    torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.classify(real_windows), nemo.decoder(encoder_output=theirs), atol=1e-4, rtol=1e-4)
    # the full NeMo forward (preprocessor, encoder, decoder) gives the same logits too
    torch.testing.assert_close(ours.classify(real_windows),
                               nemo(input_signal=real_windows, input_signal_length=lengths), atol=1e-4, rtol=1e-4)
