"""Videos: decoding, the face front end and tracking, per-video jobs and their output files, folder runs.

    >>> from emenet.inference import Predictor
    >>> from emenet.video import PredictorSpec, predict_video_to_files, predict_videos
    >>> predictor = Predictor.from_names(["teacher_exp_0"], [4], "checkpoints")  # doctest: +SKIP
    >>> predict_video_to_files(predictor, "utterance_1.mp4", "predictions/")  # doctest: +SKIP
    >>> predict_videos(["videos/"], "predictions/", PredictorSpec(("model.pth",)), workers=2)  # doctest: +SKIP
"""
from emenet.video.batch import BatchReport, find_videos, predict_videos
from emenet.video.job import PredictSettings, VideoOutcome
from emenet.video.outputs import (ImageOutputs, VideoOutputs, format_image_prediction, predict_video_to_files,
                                  write_image_outputs)
from emenet.video.predict import MultiTrackPrediction, VideoPrediction, predict_video, predict_video_tracks
from emenet.video.workers import PredictorSpec

__all__ = ["BatchReport", "ImageOutputs", "MultiTrackPrediction", "PredictSettings", "PredictorSpec", "VideoOutcome",
           "VideoOutputs", "VideoPrediction", "find_videos", "format_image_prediction", "predict_video",
           "predict_video_to_files", "predict_video_tracks", "predict_videos", "write_image_outputs"]
