"""Landmark alignment: the similarity transform by hand, the template against the reference crop,
and the same face rotated in-plane or shifted giving nearly the same aligned crop."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from emenet.data.images import read_rgb
from emenet.face.align import (ALIGN_TEMPLATE, alignment_transforms, crop_aligned, crop_face, crop_regions,
                               similarity_transforms, transform_regions)
from emenet.face.blazeface import BlazeFaceDetector

REPO = Path(__file__).resolve().parents[1]
BLUR = 1.0  # px
PHOTOS = [REPO / "example_image" / "astronaut_photo.jpg", REPO / "tests" / "data" / "faces" / "grace_hopper.jpg"]


def _corr(a: np.ndarray, b: np.ndarray, sigma: float = 0.0) -> float:
    if sigma:  # compare structure, not the blur of one more resampling
        a, b = (cv2.GaussianBlur(x.astype(np.float32), (0, 0), sigma) for x in (a, b))
    a, b = a.astype(float).ravel(), b.astype(float).ravel()
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def test_similarity_transform_by_hand():
    # The template turned by 90 degrees, scaled by 2 and moved: the transform undoes exactly that.
    angle, scale, shift = np.pi / 2, 2.0, np.array([300.0, -40.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = ALIGN_TEMPLATE @ rot.T + shift
    affine = similarity_transforms(points[None])[0]
    inverse_rot = np.array([[0.0, 0.5], [-0.5, 0.0]])  # rot^-1
    np.testing.assert_allclose(affine[:, :2], inverse_rot, atol=1e-12)
    np.testing.assert_allclose(points @ affine[:, :2].T + affine[:, 2], ALIGN_TEMPLATE, atol=1e-9)
    # The crop's centre pixel comes from the template's centre in the image; the side scales by 2.
    region = transform_regions(affine[None])[0]
    np.testing.assert_allclose(region[2], 224.0)
    np.testing.assert_allclose(np.array([55.5, 55.5]) @ rot.T + shift, region[:2], atol=1e-9)
    with pytest.raises(ValueError, match="expected points"):
        similarity_transforms(np.zeros((1, 3, 2)))


def test_least_squares_spreads_the_error():
    """Noisy points: the fit is the least-squares one (residuals orthogonal to the 4 parameters)."""
    rng = np.random.default_rng(0)
    points = ALIGN_TEMPLATE * 1.7 + 30 + rng.normal(0, 2, ALIGN_TEMPLATE.shape)
    a = similarity_transforms(points[None])[0]
    residual = points @ a[:, :2].T + a[:, 2] - ALIGN_TEMPLATE  # (4, 2)
    # d(residual)/d(params) for params (a, b, tx, ty) of [[a, -b, tx], [b, a, ty]]
    jac = np.stack([points.ravel(), np.stack([-points[:, 1], points[:, 0]], 1).ravel(),
                    np.tile([1.0, 0.0], 4), np.tile([0.0, 1.0], 4)], axis=1)
    np.testing.assert_allclose(jac.T @ residual.ravel(), 0, atol=1e-8)


@pytest.fixture(scope="module")
def detector():
    return BlazeFaceDetector()


def test_template_reproduces_the_reference_crop(detector):
    photo = read_rgb(PHOTOS[0])
    faces = detector(photo)
    crop = crop_aligned(photo, alignment_transforms(faces.points)[0])
    reference = read_rgb(REPO / "example_image" / "astronaut_112.jpg")
    assert _corr(crop, reference) > 0.88  # the Haar box crop's calibrated score (tests/test_face.py)


def _largest_crops(detector, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    faces = detector(image)
    k = int(np.argmax(faces.boxes[:, 2] - faces.boxes[:, 0]))
    return crop_aligned(image, alignment_transforms(faces.points[k:k + 1])[0]), crop_face(image, crop_regions(
        faces.boxes[k]))


@pytest.mark.parametrize("photo", PHOTOS, ids=lambda p: p.stem)
def test_aligned_crop_is_invariant_to_rotation_and_shift(detector, photo):
    """The photo on a larger canvas, then turned by +-30 degrees and shifted: the aligned crop of
    the face correlates with the upright one's at least as well as that crop does with itself
    moved by 2 px, i.e. the alignment moves by less than ~5% of the inter-ocular distance (40 px
    in the crop), the usual bound for an accurate landmark. Both crops are blurred a little
    (sigma 1 px) first: turning the photo resamples it once more, which alone would lower the
    correlation. Box crops of the turned face fall far below the bound."""
    image = read_rgb(photo)
    h, w = image.shape[:2]
    canvas = np.full((1000, 1000, 3), 100, np.uint8)
    canvas[200:200 + h, 250:250 + w] = image
    base, base_box = _largest_crops(detector, canvas)
    shifted_self = cv2.warpAffine(base, np.float64([[1, 0, 2], [0, 1, 0]]), (112, 112), borderMode=cv2.BORDER_REPLICATE)
    bound = _corr(base, shifted_self, BLUR)
    assert 0.7 < bound < 0.98
    for angle, shift in ((30, (0, 0)), (-30, (60, 40)), (0, (37, -23))):
        turn = cv2.getRotationMatrix2D((500, 500), angle, 1.0)
        turn[:, 2] += shift
        moved = cv2.warpAffine(canvas, turn, (1000, 1000), flags=cv2.INTER_LINEAR, borderValue=(100, 100, 100))
        aligned, box = _largest_crops(detector, moved)
        assert _corr(aligned, base, BLUR) > bound, (angle, shift, _corr(aligned, base, BLUR), bound)
        if angle:
            assert _corr(box, base_box, BLUR) < bound  # an upright box crop of a turned face is another picture
