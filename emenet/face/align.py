"""Detector boxes -> 112x112 face crops framed like Aff-wild2's `cropped_aligned` images.

The training crops are tight and face-centred: the top of the eyebrows about a fifth of
the height from the top, the chin just above the bottom edge (see example_image/README.md).
A frontal-face detector's box sits higher and tighter than that, so the crop is a square
`CROP_SCALE` times the box width, its centre moved `CROP_SHIFT_Y` box widths down from the
box centre. Both ratios were calibrated once on example_image/astronaut_photo.jpg with the
default `HaarFaceDetector`: they maximise the pixel correlation with astronaut_112.jpg
(0.92; the remaining gap is the photo's 3 degree head tilt, which a box cannot see).

A crop region is `(cx, cy, side)` in image pixels; `crop_faces` warps it to `size` x `size`.

    >>> regions = crop_regions(np.array([[177.0, 66.0, 271.0, 160.0]]))
    >>> crops = crop_faces(image, regions)  # doctest: +SKIP
"""
from __future__ import annotations

import cv2
import numpy as np

from emenet.models.mobilefacenet import INPUT_SIZE

# Calibrated on the astronaut pair with HaarFaceDetector() defaults (see the module docstring).
CROP_SCALE = 1.27  # side of the crop square / width of the detector's box
CROP_SHIFT_X = 0.0  # crop centre right of the box centre, in box widths (symmetric faces: 0)
CROP_SHIFT_Y = 0.17  # crop centre below the box centre, in box widths


def crop_regions(boxes: np.ndarray, scale: float = CROP_SCALE, shift_x: float = CROP_SHIFT_X,
                 shift_y: float = CROP_SHIFT_Y) -> np.ndarray:
    """(..., 4) `[x0, y0, x1, y1]` boxes -> (..., 3) square crop regions `(cx, cy, side)`."""
    boxes = np.asarray(boxes, np.float64)
    width = np.maximum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1])
    cx = (boxes[..., 0] + boxes[..., 2]) / 2 + shift_x * width
    cy = (boxes[..., 1] + boxes[..., 3]) / 2 + shift_y * width
    return np.stack([cx, cy, scale * width], axis=-1)


def region_affine(region: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """The 2x3 affine matrix taking image pixels of `region` (cx, cy, side) onto a size x size crop."""
    cx, cy, side = (float(v) for v in region)
    s = size / side
    # Pixel centres: image point (cx, cy) lands on the crop's centre (size - 1) / 2.
    c = (size - 1) / 2
    return np.array([[s, 0.0, c - s * cx], [0.0, s, c - s * cy]], np.float64)


def crop_face(image: np.ndarray, region: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """One (size, size, 3) crop of `image` (H, W, 3); outside the image is black, like a warp."""
    return cv2.warpAffine(image, region_affine(region, size), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def crop_faces(image: np.ndarray, regions: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """(K, 3) regions of one image -> (K, size, size, 3) crops (same dtype as the image)."""
    regions = np.asarray(regions).reshape(-1, 3)
    out = np.empty((len(regions), size, size, image.shape[2]), image.dtype)
    for k, region in enumerate(regions):
        out[k] = crop_face(image, region, size)
    return out


def crop_to_image(points: np.ndarray, region: np.ndarray) -> np.ndarray:
    """(..., 2) points in crop-normalized coordinates ([0, 1] across the crop) -> image pixels."""
    cx, cy, side = (float(v) for v in region)
    points = np.asarray(points, np.float64)
    return np.stack([cx + (points[..., 0] - 0.5) * side, cy + (points[..., 1] - 0.5) * side], axis=-1)


def region_box(region: np.ndarray) -> np.ndarray:
    """(..., 3) regions (cx, cy, side) -> (..., 4) `[x0, y0, x1, y1]` squares."""
    region = np.asarray(region, np.float64)
    half = region[..., 2] / 2
    return np.stack([region[..., 0] - half, region[..., 1] - half, region[..., 0] + half, region[..., 1] + half], -1)
