"""One photo -> its face's predictions: use a 112x112 aligned crop as is, else detect and crop.

    >>> result = predict_image(predictor, "example_image/astronaut_photo.jpg")  # doctest: +SKIP
    >>> result.predictions.frame_dict(0)["EXPR"]["name"], result.box  # doctest: +SKIP
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from emenet.data.images import read_rgb
from emenet.errors import EMENetInputError
from emenet.face.align import crop_face, crop_regions
from emenet.face.detector import FaceDetector, HaarFaceDetector, largest_face
from emenet.inference.predictor import Predictor
from emenet.inference.results import FramePredictions
from emenet.models.mobilefacenet import INPUT_SIZE


@dataclass(frozen=True)
class ImagePrediction:
    """A photo's prediction: the crop the model saw and, for a raw photo, where it came from.

    `box` is the detector's `[x0, y0, x1, y1]` and `region` the crop square `(cx, cy, side)`
    in the photo's pixels; both are None when the image already was an aligned crop.
    `num_faces` counts the detections (the largest face is used).
    """

    predictions: FramePredictions  # one row
    crop: np.ndarray  # (112, 112, 3) uint8 RGB
    source: str
    image_shape: tuple[int, int]
    box: np.ndarray | None = None
    region: np.ndarray | None = None
    num_faces: int = 1

    @property
    def aligned_input(self) -> bool:
        return self.box is None

    def to_dict(self) -> dict[str, Any]:
        """Every number, for JSON."""
        return {"source": self.source, "image_size": {"height": self.image_shape[0], "width": self.image_shape[1]},
                "aligned_input": self.aligned_input, "num_faces_detected": self.num_faces,
                "face_box_xyxy": None if self.box is None else [float(v) for v in self.box],
                "crop_region_cx_cy_side": None if self.region is None else [float(v) for v in self.region],
                **self.predictions.frame_dict(0)}


def face_crop(image: np.ndarray, detector: FaceDetector | None = None, source: str = "image"
              ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, int]:
    """(crop, box, region, number of faces) of the largest face; a 112x112 image is the crop itself."""
    if image.shape[:2] == (INPUT_SIZE, INPUT_SIZE):
        return image, None, None, 1
    detections = (detector or HaarFaceDetector())(image)
    k = largest_face(detections)
    if k is None:
        raise EMENetInputError(f"{source}: no face found in the image ({image.shape[1]}x{image.shape[0]})")
    region = crop_regions(detections.boxes[k])
    return crop_face(image, region), detections.boxes[k].copy(), region, len(detections)


def predict_image(predictor: Predictor, image: str | os.PathLike | np.ndarray,
                  detector: FaceDetector | None = None) -> ImagePrediction:
    """Predict one photo (a path, or an (H, W, 3) uint8 RGB array), as a sequence of one frame.

    A 112x112 image is taken as an aligned crop and fed directly; anything else goes through
    the face detector (the largest face) and the crop calibrated in emenet.face.align.
    """
    if isinstance(image, (str, os.PathLike)):
        source = str(image)
        rgb = read_rgb(image)  # one line for a folder, a missing, unreadable, empty or truncated file
    else:
        source = "array"
        rgb = image
        if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise EMENetInputError("expected an image path or an (H, W, 3) uint8 RGB array")
    crop, box, region, num_faces = face_crop(rgb, detector, source)
    predictions, _ = predictor.predict_frames(np.ascontiguousarray(crop)[None])
    return ImagePrediction(predictions, crop, source, rgb.shape[:2], box, region, num_faces)
