"""EMENet: multitask facial emotion recognition with uncertainty (Deng, Wu, Shi, ICCVW 2021).

    >>> import emenet
    >>> predictor = emenet.Predictor(["checkpoints/teacher_exp_0/net_epoch_4_teacher_exp_0.pth"])  # doctest: +SKIP

The inference API (`Predictor`, `predict_video`, ...) is imported on first use, so that
`import emenet` for training or model work does not load the video and plotting stack.
"""
from emenet.models import (EMENet, EMENetConfig, EMENetVA, EMENetVAConfig, create_model, list_models, load_checkpoint,
                           save_checkpoint)
from emenet.tasks import AU_NAMES, EXPR_NAMES, TASKS

__version__ = "0.1.0"

_INFERENCE_EXPORTS = ("Predictor", "PredictionStream", "StreamState", "FramePredictions", "predict_image",
                      "predict_video", "predict_video_to_files")
_VIDEO_EXPORTS = ("predict_video", "predict_video_to_files")  # emenet.video; the rest are emenet.inference

__all__ = ["AU_NAMES", "EMENet", "EMENetConfig", "EMENetVA", "EMENetVAConfig", "EXPR_NAMES", "TASKS", "create_model",
           "list_models", "load_checkpoint", "save_checkpoint", *_INFERENCE_EXPORTS]


def __getattr__(name: str):
    if name in _INFERENCE_EXPORTS:
        import importlib
        return getattr(importlib.import_module("emenet.video" if name in _VIDEO_EXPORTS else "emenet.inference"), name)
    raise AttributeError(f"module 'emenet' has no attribute {name!r}")
