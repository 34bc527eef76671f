"""Face detection behind a small protocol; BlazeFace (emenet.face.blazeface) by default, OpenCV's
frontal-face Haar cascade as a fallback.

A detector takes one uint8 RGB image (H, W, 3) and returns `Detections`: boxes as
(K, 4) float32 `[x0, y0, x1, y1]` in the image's pixels and one score per box (higher is
more confident). Anything with that `__call__` works with the tracker and the predictor,
so a better detector (a CNN, a landmark model) slots in without touching the rest.

    >>> detector = HaarFaceDetector()
    >>> faces = detector(read_rgb("example_image/astronaut_photo.jpg"))  # doctest: +SKIP
    >>> faces.boxes  # doctest: +SKIP
    array([[176.4, 65.4, 273.1, 162.1]], dtype=float32)
"""
from __future__ import annotations

import cv2
import numpy as np

from emenet.face.detections import Detections, FaceDetector, check_rgb_image

__all__ = ["DEFAULT_DETECTOR", "DETECTORS", "Detections", "FaceDetector", "HaarFaceDetector", "check_rgb_image",
           "default_detector", "largest_face", "make_detector"]

HAAR_FRONTAL_FACE = "haarcascade_frontalface_default.xml"


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade (`haarcascade_frontalface_default.xml`).

    The image is searched at a reduced size: its longer side at most `max_side` pixels
    (360 by default). On a 640x360 video that is about 2x faster than full resolution and
    the boxes agree to ~3% (the crop ratios in `emenet.face.align` were calibrated with
    these defaults). `min_size` is the smallest face searched for, in pixels of the
    reduced image. The score of a box is the number of neighbouring detections that
    support it (OpenCV's `numDetections`), a rough confidence.
    """

    def __init__(self, scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 24,
                 max_side: int | None = 360, cascade: str = HAAR_FRONTAL_FACE):
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self.max_side = max_side
        path = cascade if "/" in cascade else cv2.data.haarcascades + cascade
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise FileNotFoundError(f"cannot load the Haar cascade {path}")

    def __repr__(self) -> str:
        return (f"HaarFaceDetector(scale_factor={self.scale_factor}, min_neighbors={self.min_neighbors}, "
                f"min_size={self.min_size}, max_side={self.max_side})")

    def __call__(self, image: np.ndarray) -> Detections:
        check_rgb_image(image)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        scale = 1.0
        if self.max_side is not None and max(grey.shape) > self.max_side:
            scale = self.max_side / max(grey.shape)
            grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        boxes, neighbours = self._cascade.detectMultiScale2(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size))
        if len(boxes) == 0:
            return Detections.empty()
        xywh = np.asarray(boxes, np.float32) / scale  # (K, 4) x, y, w, h in the original image
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        return Detections(xyxy.astype(np.float32), np.asarray(neighbours, np.float32).reshape(-1))


def largest_face(detections: Detections) -> int | None:
    """Index of the largest box (the usual subject of a photo), or None when there is none."""
    if len(detections) == 0:
        return None
    wh = detections.boxes[:, 2:] - detections.boxes[:, :2]
    return int(np.argmax(wh[:, 0] * wh[:, 1]))


DETECTORS = ("blazeface", "haar")
DEFAULT_DETECTOR = "blazeface"


def make_detector(name: str = DEFAULT_DETECTOR, **options) -> FaceDetector:
    """A detector by name: `blazeface` (default; emenet.face.blazeface.BlazeFaceDetector, options
    `model`, `score_threshold`, `min_face_size`, `backend`) or `haar` (HaarFaceDetector)."""
    if name == "blazeface":
        from emenet.face.blazeface import BlazeFaceDetector
        return BlazeFaceDetector(**options)
    if name == "haar":
        return HaarFaceDetector(**options)
    from emenet.errors import EMENetInputError
    raise EMENetInputError(f"unknown face detector {name!r}; valid: {', '.join(DETECTORS)}")


def default_detector() -> FaceDetector:
    """The detector used when none is given: BlazeFace with its defaults."""
    return make_detector(DEFAULT_DETECTOR)
