"""One photo -> every face's predictions: use a 112x112 aligned crop as is, else detect and align.

Every face the detector finds is cropped (landmark-aligned with BlazeFace, see emenet.face.align)
and predicted on its own (a sequence of one frame, no hidden state); faces are numbered left
to right. `largest_face=True` keeps only the largest face, as a one-face result.

    >>> result = predict_image(predictor, "example_image/astronaut_photo.jpg")  # doctest: +SKIP
    >>> [face.predictions.frame_dict(0)["EXPR"]["name"] for face in result.faces]  # doctest: +SKIP
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emenet.data.images import read_rgb
from emenet.errors import EMENetInputError
from emenet.face.align import alignment_transforms, crop_aligned, crop_face, crop_regions, transform_regions
from emenet.face.blazeface.decode import KEYPOINT_NAMES
from emenet.face.detector import Detections, FaceDetector, default_detector, largest_face
from emenet.inference.predictor import Predictor
from emenet.inference.results import FramePredictions
from emenet.models.mobilefacenet import INPUT_SIZE


@dataclass(frozen=True)
class FacePrediction:
    """One face of a photo: its crop, where it came from (None for an aligned input) and its
    predictions (one row). `points` (P, 2) are the detector's landmarks (BlazeFace's six)."""

    index: int
    crop: np.ndarray  # (112, 112, 3) uint8 RGB
    predictions: FramePredictions
    box: np.ndarray | None = None
    region: np.ndarray | None = None
    points: np.ndarray | None = None
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"face": self.index,
                               "face_box_xyxy": None if self.box is None else [float(v) for v in self.box],
                               "crop_region_cx_cy_side": None if self.region is None else [float(v) for v in self.region],
                               "detection_score": self.score}
        if self.points is not None:
            names = KEYPOINT_NAMES if len(self.points) == len(KEYPOINT_NAMES) else [str(k) for k in range(len(self.points))]
            out["points_xy"] = {name: [float(v) for v in p] for name, p in zip(names, self.points)}
        return {**out, **self.predictions.frame_dict(0)}


@dataclass(frozen=True)
class ImagePrediction:
    """A photo's predictions, one `FacePrediction` per face (numbered left to right).

    `main` is the largest face; `predictions`, `crop`, `box` and `region` are its, as in the
    one-face result. `num_faces` counts the detections (all faces, even with `largest_face`).
    """

    faces: list[FacePrediction]
    source: str
    image_shape: tuple[int, int]
    num_faces: int = 1
    main_index: int = 0
    aligned_input: bool = False
    image: np.ndarray | None = field(default=None, repr=False)  # the photo, for drawing

    @property
    def main(self) -> FacePrediction:
        return self.faces[self.main_index]

    @property
    def predictions(self) -> FramePredictions:
        return self.main.predictions

    @property
    def crop(self) -> np.ndarray:
        return self.main.crop

    @property
    def box(self) -> np.ndarray | None:
        return self.main.box

    @property
    def region(self) -> np.ndarray | None:
        return self.main.region

    def to_dict(self) -> dict[str, Any]:
        """Every number, for JSON: the main face's at the top level (as the one-face result),
        and every face in `faces`."""
        main = self.main.to_dict()
        main.pop("face")
        return {"source": self.source, "image_size": {"height": self.image_shape[0], "width": self.image_shape[1]},
                "aligned_input": self.aligned_input, "num_faces_detected": self.num_faces,
                "num_faces_predicted": len(self.faces), "main_face": self.main_index, **main,
                "faces": [face.to_dict() for face in self.faces]}


def face_crops(image: np.ndarray, detections: Detections) -> tuple[np.ndarray, np.ndarray]:
    """(K, 112, 112, 3) crops and (K, 3) regions of every detection: aligned on the points when
    the detector gives them, else the calibrated box crop."""
    if len(detections) == 0:
        return np.zeros((0, INPUT_SIZE, INPUT_SIZE, 3), np.uint8), np.zeros((0, 3))
    if detections.points is not None:
        affines = alignment_transforms(detections.points)
        return np.stack([crop_aligned(image, a) for a in affines]), transform_regions(affines)
    regions = crop_regions(detections.boxes)
    return np.stack([crop_face(image, r) for r in regions]), regions


def _read(image: str | os.PathLike | np.ndarray) -> tuple[np.ndarray, str]:
    if isinstance(image, (str, os.PathLike)):
        return read_rgb(image), str(image)  # one line for a folder, a missing, unreadable, empty or truncated file
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise EMENetInputError("expected an image path or an (H, W, 3) uint8 RGB array")
    return image, "array"


def predict_image(predictor: Predictor, image: str | os.PathLike | np.ndarray,
                  detector: FaceDetector | None = None, largest_face_only: bool = False) -> ImagePrediction:
    """Predict every face of one photo (a path, or an (H, W, 3) uint8 RGB array).

    A 112x112 image is taken as an aligned crop and fed directly; anything else goes through
    the face detector (default: BlazeFace) and each face is aligned and predicted on its own.
    `largest_face_only` predicts only the largest face. Raises EMENetInputError when no face is found.
    """
    rgb, source = _read(image)
    if rgb.shape[:2] == (INPUT_SIZE, INPUT_SIZE):
        predictions = predictor.predict_independent(np.ascontiguousarray(rgb)[None])
        return ImagePrediction([FacePrediction(0, rgb, predictions)], source, rgb.shape[:2], 1, 0, True, rgb)
    detections = (detector or default_detector())(rgb)
    if len(detections) == 0:
        raise EMENetInputError(f"{source}: no face found in the image ({rgb.shape[1]}x{rgb.shape[0]})")
    num_detected = len(detections)
    if largest_face_only:
        detections = detections.select([largest_face(detections)])
    # Number the faces left to right (by box centre), as a reader of a group photo would.
    order = np.argsort((detections.boxes[:, 0] + detections.boxes[:, 2]) / 2, kind="stable")
    detections = detections.select(order)
    crops, regions = face_crops(rgb, detections)
    predictions = predictor.predict_independent(crops)  # each face alone, one batch
    faces = [FacePrediction(k, crops[k], predictions.take(np.array([k])), detections.boxes[k].copy(), regions[k],
                            None if detections.points is None else detections.points[k].copy(),
                            float(detections.scores[k]))
             for k in range(len(detections))]
    return ImagePrediction(faces, source, rgb.shape[:2], num_detected, int(largest_face(detections)), False, rgb)
