"""What a face detector returns, and the protocol every detector follows.

Its own module, below `emenet.face.detector` (which picks a detector by name) and the
detectors themselves (`emenet.face.blazeface`), so a detector never imports the factory
that builds it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Detections:
    """Faces found in one image: `boxes` (K, 4) `[x0, y0, x1, y1]` pixels, `scores` (K,), and,
    from a landmark detector, `points` (K, P, 2) pixels (BlazeFace: P = 6, see
    emenet.face.blazeface.decode.KEYPOINT_NAMES); None when the detector gives no points."""

    boxes: np.ndarray
    scores: np.ndarray
    points: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4 or self.scores.shape != (self.boxes.shape[0],):
            raise ValueError(f"Detections: expected boxes (K, 4) and scores (K,), "
                             f"got {self.boxes.shape} and {self.scores.shape}")
        if self.points is not None and (self.points.ndim != 3 or self.points.shape[0] != self.boxes.shape[0]
                                        or self.points.shape[2] != 2):
            raise ValueError(f"Detections: expected points (K, P, 2) for {self.boxes.shape[0]} boxes, "
                             f"got {self.points.shape}")

    def __len__(self) -> int:
        return self.boxes.shape[0]

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    @classmethod
    def empty_with_points(cls, num_points: int = 6) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, num_points, 2), np.float32))

    def select(self, index: np.ndarray | list[int]) -> "Detections":
        """The detections at `index` (an index array or a boolean mask), points included."""
        index = np.asarray(index)
        return Detections(self.boxes[index], self.scores[index], None if self.points is None else self.points[index])


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that maps an (H, W, 3) uint8 RGB image to its `Detections`."""

    def __call__(self, image: np.ndarray) -> Detections: ...


def check_rgb_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        desc = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {desc}")
