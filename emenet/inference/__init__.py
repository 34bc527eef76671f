"""Inference for users: checkpoints -> predictions with uncertainty for crops and photos.

Videos, folders of videos and their output files are `emenet.video`, built on this package.

    >>> from emenet.inference import Predictor
    >>> predictor = Predictor.from_names(["teacher_exp_0"], [4], "checkpoints")  # doctest: +SKIP
    >>> predictor.predict_image("example_image/astronaut_photo.jpg").predictions.to_dataframe()  # doctest: +SKIP
"""
from emenet.inference.image import ImagePrediction, predict_image
from emenet.inference.predictor import PredictionStream, Predictor, StreamState
from emenet.inference.results import FramePredictions, TaskUncertainty

__all__ = ["FramePredictions", "ImagePrediction", "PredictionStream", "Predictor", "StreamState", "TaskUncertainty",
           "predict_image"]
