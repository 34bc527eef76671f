"""Inference for users: checkpoints -> predictions with uncertainty for crops, photos and videos.

    >>> from emenet.inference import Predictor, predict_video_to_files
    >>> predictor = Predictor.from_names(["teacher_exp_0"], [4], "checkpoints")  # doctest: +SKIP
    >>> predictor.predict_image("example_image/astronaut_photo.jpg").predictions.to_dataframe()  # doctest: +SKIP
    >>> predict_video_to_files(predictor, "utterance_1.mp4", "predictions/")  # doctest: +SKIP
    >>> predict_videos(["videos/"], "predictions/", PredictorSpec(("model.pth",)), workers=2)  # doctest: +SKIP
"""
from emenet.inference.batch import BatchReport, find_videos, predict_videos
from emenet.inference.image import ImagePrediction, predict_image
from emenet.inference.outputs import (ImageOutputs, VideoOutputs, format_image_prediction, predict_video_to_files,
                                      write_image_outputs)
from emenet.inference.predictor import PredictionStream, Predictor, StreamState
from emenet.inference.results import FramePredictions, TaskUncertainty
from emenet.inference.video import MultiTrackPrediction, VideoPrediction, predict_video, predict_video_tracks
from emenet.inference.video_job import PredictSettings, VideoOutcome
from emenet.inference.workers import PredictorSpec

__all__ = ["BatchReport", "FramePredictions", "ImageOutputs", "ImagePrediction", "MultiTrackPrediction",
           "PredictSettings", "PredictionStream", "Predictor", "PredictorSpec", "StreamState", "TaskUncertainty",
           "VideoOutcome", "VideoOutputs", "VideoPrediction", "find_videos", "format_image_prediction",
           "predict_image", "predict_video", "predict_video_to_files", "predict_video_tracks", "predict_videos",
           "write_image_outputs"]
