"""Inference for users: checkpoints -> predictions with uncertainty for crops, photos and videos.

    >>> from emenet.inference import Predictor, predict_video_to_files
    >>> predictor = Predictor.from_names(["teacher_exp_0"], [4], "checkpoints")  # doctest: +SKIP
    >>> predictor.predict_image("example_image/astronaut_photo.jpg").predictions.to_dataframe()  # doctest: +SKIP
    >>> predict_video_to_files(predictor, "utterance_1.mp4", "predictions/")  # doctest: +SKIP
"""
from emenet.inference.image import ImagePrediction, predict_image
from emenet.inference.outputs import (ImageOutputs, VideoOutputs, format_image_prediction, predict_video_to_files,
                                      write_image_outputs)
from emenet.inference.predictor import PredictionStream, Predictor, StreamState
from emenet.inference.results import FramePredictions, TaskUncertainty
from emenet.inference.video import VideoPrediction, predict_video

__all__ = ["FramePredictions", "ImageOutputs", "ImagePrediction", "PredictionStream", "Predictor", "StreamState",
           "TaskUncertainty", "VideoOutputs", "VideoPrediction", "format_image_prediction", "predict_image",
           "predict_video", "predict_video_to_files", "write_image_outputs"]
