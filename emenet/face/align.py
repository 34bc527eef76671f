"""Faces -> 112x112 crops framed like Aff-wild2's `cropped_aligned` images.

Two ways, by what the detector gives:

**Landmark alignment** (BlazeFace, the default detector): a similarity transform (rotation,
uniform scale, translation; least squares over the points) takes the face's right eye, left
eye, nose tip and mouth centre onto `ALIGN_TEMPLATE`, fixed points of the 112x112 crop, so
every crop has the face centred, the eyes level and the same inter-ocular distance, as the
training crops (landmark-aligned by Aff-wild2's own pipeline) do. The template is the one
place that fixes this framing. Its numbers reproduce example_image/astronaut_112.jpg, the
reference crop that was made to look like Aff-wild2's (see example_image/README.md: eyes level
at 30/112 from the top, chin just above the bottom edge): BlazeFace's four points on
astronaut_photo.jpg (refined, as the detector gives them by default), mapped by that crop's own
warp, land at right eye (39.1, 31.7), left eye (78.6, 32.6), nose (58.6, 55.2) and mouth
(58.7, 72.8); the template is that set made left-right symmetric about the crop's centre column
(x = 56) with the eyes level (y = 32.16).
Ear points are not used: they leave the face in three-quarter views. `emenet synth` renders
its crops with the same template (emenet.data.synth), so training and inference agree.

**Box crops** (the Haar cascade, which gives no points):

The training crops are tight and face-centred: the top of the eyebrows about a fifth of
the height from the top, the chin just above the bottom edge (see example_image/README.md).
A frontal-face detector's box sits higher and tighter than that, so the crop is a square
`CROP_SCALE` times the box width, its centre moved `CROP_SHIFT_Y` box widths down from the
box centre. Both ratios were calibrated once on example_image/astronaut_photo.jpg with the
default `HaarFaceDetector`: they maximise the pixel correlation with astronaut_112.jpg
(0.92; the remaining gap is the photo's 3 degree head tilt, which a box cannot see).

A crop region is `(cx, cy, side)` in image pixels; `crop_faces` warps it to `size` x `size`.
An aligned crop's region is the square it covers (its rotation aside), for drawing and tables.

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


# (4, 2) x, y in the 112x112 crop of: right eye, left eye, nose tip, mouth centre (BlazeFace's
# keypoints 0-3). Derivation in the module docstring.
ALIGN_TEMPLATE = np.array([[36.22, 32.16], [75.78, 32.16], [56.0, 55.21], [56.0, 72.83]], np.float64)
ALIGN_POINTS = (0, 1, 2, 3)  # which of the detector's points the template matches


def similarity_transforms(points: np.ndarray, template: np.ndarray = ALIGN_TEMPLATE, size: int = INPUT_SIZE
                          ) -> np.ndarray:
    """(N, P, 2) image points -> (N, 2, 3) least-squares similarity transforms onto `template`
    ((P, 2) target pixels).

    Closed form, batched: in complex numbers z (image) and w (template), both centred, the
    rotation-and-scale is c = sum(conj(z) w) / sum(|z|^2) and the translation mean(w) - c mean(z)
    (Umeyama's solution without reflection). `size` is unused (kept for symmetry with callers).
    """
    points = np.asarray(points, np.float64)
    if points.ndim != 3 or points.shape[1:] != template.shape:
        raise ValueError(f"expected points (N, {len(template)}, 2), got {points.shape}")
    target = np.asarray(template, np.float64)
    z = points[..., 0] + 1j * points[..., 1]  # (N, P)
    w = target[:, 0] + 1j * target[:, 1]  # (P,)
    z_mean, w_mean = z.mean(axis=1, keepdims=True), w.mean()
    zc, wc = z - z_mean, w - w_mean
    c = (np.conj(zc) * wc).sum(axis=1) / np.maximum((np.abs(zc) ** 2).sum(axis=1), 1e-12)  # (N,)
    t = w_mean - c * z_mean[:, 0]
    return np.stack([np.stack([c.real, -c.imag, t.real], -1), np.stack([c.imag, c.real, t.imag], -1)], axis=1)


def alignment_transforms(points: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """(N, K, 2) detector points (BlazeFace's 6) -> (N, 2, 3) image -> size x size crop transforms."""
    return similarity_transforms(np.asarray(points)[:, list(ALIGN_POINTS)], ALIGN_TEMPLATE * (size / INPUT_SIZE))


def transform_regions(affines: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """(N, 2, 3) image -> crop similarity transforms -> (N, 3) the squares `(cx, cy, side)` they
    crop (the image point at the crop's centre, and the crop's side in image pixels)."""
    affines = np.asarray(affines, np.float64)
    scale = np.hypot(affines[:, 0, 0], affines[:, 1, 0])  # (N,)
    centre = np.full((len(affines), 2), (size - 1) / 2)
    lin, shift = affines[:, :, :2], affines[:, :, 2]
    image_centre = np.linalg.solve(lin, (centre - shift)[..., None])[..., 0]
    return np.concatenate([image_centre, (size / scale)[:, None]], axis=1)


def crop_aligned(image: np.ndarray, affine: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """One (size, size, 3) crop of `image` through an image -> crop transform; outside is black."""
    return cv2.warpAffine(image, np.asarray(affine, np.float64), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


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
