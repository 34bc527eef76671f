"""`BlazeFaceDetector`: MediaPipe's BlazeFace on any image size, batched over frames.

Each image is seen through square "views" at the model's input size (128 short-range,
192 full-range): the whole image letterboxed (centred, black bars), and, when the smallest
face asked for (`min_face_size`) is below what the whole view can resolve, overlapping tiles
small enough to resolve it (a 100 px face in a 3840x2160 frame is ~5 px of a 192 px view;
in a 1300 px tile it is ~15 px, which the full-range model finds). All views of all images go
through the network as one batch; boxes and keypoints are decoded (emenet.face.blazeface.decode),
mapped back to image pixels and merged per image by MediaPipe's weighted NMS, so a face seen
by two views becomes one. A tile keeps only faces lying wholly inside it, away from its inner
edges; tiles overlap by more than the largest face they must catch.

Points are then refined (`refine_points` rounds, REFINE_ROUNDS by default): each face is seen
again through an upright view, the face rotated level, centred and scaled to about a quarter of
the view by a similarity transform of its current points (REFINE_VIEW_POINTS), and its points are
taken from that view; the second round starts from the first round's points.
BlazeFace places points less precisely on tilted and small faces; the second look makes the
points, and so the aligned crops, nearly independent of in-plane rotation and position
(tests/test_align.py: the same face turned by 30 degrees gives a crop correlating > 0.9 with
the upright one's, against 0.7-0.8 from the first points alone).

With `detect_every` K > 1 (a batch of consecutive video frames), only every K-th frame (a
keyframe) is searched and refined; the frames in between follow the faces of the keyframe before
them: each face gets one upright look positioned from the keyframe's refined points, which gives
its box, score and points in that frame (one network pass per face instead of a search and
`refine_points` looks). A frame where any followed face is not seen again, or whose keyframe has
no face, is searched in full, so faces are lost or found at most K - 1 frames late.
tests/test_blazeface_follow.py measures its points against every-frame detection.

The network runs in torch (`backend="torch"`) or as an ONNX graph in ONNX Runtime
(`backend="onnx"`, the `onnx` extra; `auto` picks it when installed), like the emotion models.

    >>> detector = BlazeFaceDetector()
    >>> faces = detector(read_rgb("example_image/astronaut_photo.jpg"))  # doctest: +SKIP
    >>> faces.boxes, faces.points.shape  # doctest: +SKIP
    (array([[180.9, 70.6, 276.0, 165.7]], dtype=float32), (1, 6, 2))
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from emenet.face.blazeface.decode import (ANCHOR_OPTIONS, NMS_IOU_THRESHOLD, decode_boxes, scores_from_logits,
                                         ssd_anchor_centres, weighted_nms)
from emenet.face.blazeface.network import MODELS, BlazeFaceNet, load_blazeface
from emenet.face.detections import Detections, check_rgb_image

log = logging.getLogger(__name__)

DEFAULT_MODEL = "full_range"
DEFAULT_SCORE_THRESHOLD = 0.5  # MediaPipe's min_score_thresh / min_detection_confidence
# The smallest face (box width) each model finds reliably, as a fraction of its view's side.
# Measured with the astronaut and Grace Hopper faces scaled down on a grey canvas: the full-range
# model scores them above 0.6 from 8% of the view on, the short-range model from 12-14%.
SMALLEST_FACE_FRACTION = {"short_range": 0.14, "full_range": 0.08}
# px: with no min_face_size given, large frames are tiled so that faces this small are found
# (a 640x360 frame needs no tiles: its whole view resolves 51 px), and no face is dropped for its size.
DEFAULT_SEARCH_FACE_SIZE = 64
MAX_TILES_PER_SIDE = 8
REFINE_ROUNDS = 2  # upright second looks at each face (each from the previous points)
TILE_EDGE_MARGIN = 0.02  # of the tile side: a box this close to an inner edge may be cut off
BACKENDS = ("auto", "torch", "onnx")
# Views per network call: small batches keep the full-range model's large early maps in the core's
# cache (2 MB L2: 4.7-5.0 ms per view at 4-8 views a call against 5.8-7.5 at 32, 1 or 2 threads, loaded machine).
NETWORK_BATCH = 8
LOGIT_MARGIN = 1e-3  # the score of a logit this far below the threshold's rounds to below the threshold


@dataclass(frozen=True)
class View:
    """A square region of an image: top-left (x0, y0) and side, in image pixels; `tile` says
    whether detections touching its inner edges should be dropped (the whole-image view: no)."""

    x0: float
    y0: float
    side: float
    tile: bool


def image_views(height: int, width: int, min_face_size: float, smallest_fraction: float) -> list[View]:
    """The whole image letterboxed, then tiles if `min_face_size` is below what it resolves."""
    side = float(max(height, width))
    views = [View((width - side) / 2, (height - side) / 2, side, False)]
    if min_face_size >= side * smallest_fraction:
        return views
    tile = max(min_face_size / smallest_fraction, 1.0)
    overlap = side * smallest_fraction  # faces at least this big are found in the whole view
    for _ in range(8):  # the overlap must stay well under the tile
        if overlap <= 0.5 * tile:
            break
        tile *= 1.5
    tile = min(tile, side)
    if tile >= side:
        return views
    stride = tile - overlap

    def starts(extent: int) -> list[float]:
        if extent <= tile:
            return [(extent - tile) / 2]
        count = min(math.ceil((extent - tile) / stride) + 1, MAX_TILES_PER_SIDE)
        return list(np.linspace(0, extent - tile, count))

    for y0 in starts(height):
        for x0 in starts(width):
            views.append(View(float(x0), float(y0), float(tile), True))
    return views


# Where the refinement view puts the right eye, left eye, nose tip and mouth centre, in units of
# the view's side: a face about a quarter of the view wide (where the full-range model scores
# faces highest; at 40% the refined crops of tests/test_align.py moved 2-3 times more), upright
# and centred. Fixed on its own (not the crop template), so refined points depend on the image only.
REFINE_VIEW_POINTS = np.array([[0.4558, 0.4308], [0.5487, 0.4308], [0.5024, 0.4845], [0.5024, 0.5276]])


def upright_view_transforms(points: np.ndarray, size: int) -> np.ndarray:
    """(F, 6, 2) face points -> (F, 2, 3) image -> view transforms (size x size pixels) that put
    the eyes, nose and mouth where REFINE_VIEW_POINTS says: the face level and centred."""
    from emenet.face.align import ALIGN_POINTS, similarity_transforms
    return similarity_transforms(np.asarray(points)[:, list(ALIGN_POINTS)], REFINE_VIEW_POINTS * size, size)


def render_view(image: np.ndarray, view: View, size: int) -> np.ndarray:
    """The view of `image` as a (size, size, 3) uint8 picture; outside the image is black."""
    height, width = image.shape[:2]
    scale = size / view.side
    x0, y0 = max(int(math.floor(view.x0)), 0), max(int(math.floor(view.y0)), 0)
    x1, y1 = min(int(math.ceil(view.x0 + view.side)), width), min(int(math.ceil(view.y0 + view.side)), height)
    # The visible part, resized (area averaging when shrinking), placed where it falls in the view.
    part = image[y0:y1, x0:x1]
    out_w = max(int(round((x1 - x0) * scale)), 1)
    out_h = max(int(round((y1 - y0) * scale)), 1)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(part, (out_w, out_h), interpolation=interpolation)
    canvas = np.zeros((size, size, 3), np.uint8)
    ox, oy = int(round((x0 - view.x0) * scale)), int(round((y0 - view.y0) * scale))
    h, w = min(out_h, size - oy), min(out_w, size - ox)
    canvas[oy:oy + h, ox:ox + w] = resized[:h, :w]
    return canvas


class BlazeFaceDetector:
    """BlazeFace face detector with six keypoints per face (see the module docstring).

    `model`: "full_range" (default: faces from ~5% of the frame to close-ups) or "short_range"
    (faster, faces filling a good part of the frame). `score_threshold`: minimum confidence
    (MediaPipe's 0.5). `min_face_size`: smallest face wanted, in image pixels (box width);
    smaller detections are dropped, and large images are tiled so that faces this small are found.
    None (the default): tiles find faces of DEFAULT_SEARCH_FACE_SIZE px, and every face found is kept.
    """

    def __init__(self, model: str = DEFAULT_MODEL, score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                 min_face_size: float | None = None, backend: str = "auto",
                 iou_threshold: float = NMS_IOU_THRESHOLD, batch_size: int = NETWORK_BATCH,
                 refine_points: int = REFINE_ROUNDS,
                 detect_every: int = 1):
        if model not in MODELS:
            raise ValueError(f"unknown BlazeFace model {model!r}; valid: {', '.join(MODELS)}")
        if not 0.0 < score_threshold < 1.0:
            raise ValueError(f"score_threshold must be in (0, 1), got {score_threshold}")
        if min_face_size is not None and min_face_size <= 0:
            raise ValueError(f"min_face_size must be positive, got {min_face_size}")
        if detect_every < 1:
            raise ValueError(f"detect_every must be at least 1, got {detect_every}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown detector backend {backend!r}; valid: {', '.join(BACKENDS)}")
        self.model = model
        self.score_threshold = float(score_threshold)
        self.min_face_size = None if min_face_size is None else float(min_face_size)
        self.search_face_size = DEFAULT_SEARCH_FACE_SIZE if min_face_size is None else float(min_face_size)
        self.iou_threshold = float(iou_threshold)
        self.batch_size = int(batch_size)
        self.refine_points = int(refine_points)
        self.detect_every = int(detect_every)
        self.net: BlazeFaceNet = load_blazeface(model)
        self.input_size = self.net.input_size[0]
        self.anchors = ssd_anchor_centres(ANCHOR_OPTIONS[model])
        # Logits below this cannot reach score_threshold (a margin far above float32 rounding).
        self._logit_floor = np.float32(math.log(self.score_threshold / (1 - self.score_threshold)) - LOGIT_MARGIN)
        self._session = None
        self.backend = self._pick_backend(backend)

    def __repr__(self) -> str:
        return (f"BlazeFaceDetector(model={self.model!r}, score_threshold={self.score_threshold}, "
                f"min_face_size={self.min_face_size}, refine_points={self.refine_points}, detect_every={self.detect_every}, "
                f"backend={self.backend!r})")

    def _pick_backend(self, backend: str) -> str:
        from emenet.fast.onnx_backend import onnx_available
        if backend == "auto":
            backend = "onnx" if onnx_available() else "torch"
        if backend == "onnx":
            from emenet.face.blazeface.export import detector_session
            # As many threads as torch may use here (a worker's share of the cores; see video.workers).
            self._session = detector_session(self.net, self.model, threads=max(1, torch.get_num_threads()))
        return backend

    def run_network(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(V, S, S, 3) uint8 views -> regressors (V, A, 16), score logits (V, A), float32."""
        x = np.empty((len(batch), batch.shape[3], *batch.shape[1:3]), np.float32)  # (V, 3, S, S)
        x[...] = batch.transpose(0, 3, 1, 2)  # one pass: reordered and converted together
        x *= np.float32(1 / 127.5)
        x -= np.float32(1.0)  # RGB in [-1, 1]
        if self._session is not None:
            from emenet.face.blazeface.export import run_detector_session
            return run_detector_session(self._session, x)
        x = torch.from_numpy(x)
        with torch.inference_mode():
            regressors, logits = self.net(x)
        return regressors.numpy(), logits.numpy()

    def __call__(self, image: np.ndarray) -> Detections:
        return self.detect_batch([image])[0]

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Detect faces in several images at once (their views go through the network together).

        With `detect_every` K > 1 the images are consecutive video frames: every K-th is searched,
        the others follow its faces (see the module docstring)."""
        if self.detect_every == 1 or len(images) < 2:
            return self._search(images)
        found: list[Detections | None] = [None] * len(images)
        keys = list(range(0, len(images), self.detect_every))
        for k, d in zip(keys, self._search([images[k] for k in keys])):
            found[k] = d
        between = [i for i in range(len(images)) if found[i] is None]
        followed = self._follow([images[i] for i in between], [found[i - i % self.detect_every] for i in between])
        for i, d in zip(between, followed):
            found[i] = d
        lost = [i for i, d in zip(between, followed) if d is None]
        for i, d in zip(lost, self._search([images[i] for i in lost])):
            found[i] = d
        return found

    def _search(self, images: Sequence[np.ndarray]) -> list[Detections]:
        """Every image searched through its views, then `refine_points` upright looks per face."""
        fraction = SMALLEST_FACE_FRACTION[self.model]
        views: list[tuple[int, View]] = []
        for index, image in enumerate(images):
            check_rgb_image(image)
            views += [(index, v) for v in image_views(*image.shape[:2], self.search_face_size, fraction)]
        size = self.input_size
        if not views:
            return []
        pictures = np.stack([render_view(images[i], v, size) for i, v in views])
        found: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in images]
        for (index, view), (b, p, s) in zip(views, self._decoded(pictures)):
            if not len(s):
                continue
            b = b * view.side + np.array([view.x0, view.y0, view.x0, view.y0], np.float32)
            p = p * view.side + np.array([view.x0, view.y0], np.float32)
            if view.tile:
                inside = _inside_tile(b, view, *images[index].shape[:2])
                b, p, s = b[inside], p[inside], s[inside]
            found[index].append((b, p, s))
        merged = [self._merge(parts) for parts in found]
        for _ in range(self.refine_points):
            merged = self._refined(images, merged)
        return merged

    def _decoded(self, pictures: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(V, S, S, 3) views -> per view, the anchors scoring at least `score_threshold`: boxes
        (K, 4), points (K, 6, 2) in view units and scores (K,), in anchor order.

        Only those anchors are decoded (a few of the 2304 per view): the scores are computed
        where the logit is near or above the threshold's, then compared as before."""
        outputs = [self.run_network(pictures[start:start + self.batch_size])
                   for start in range(0, len(pictures), self.batch_size)]
        regressors, logits = [r for r, _ in outputs], [s for _, s in outputs]
        logits = np.concatenate(logits) if len(logits) > 1 else logits[0]  # (V, A)
        regressors = np.concatenate(regressors) if len(regressors) > 1 else regressors[0]  # (V, A, 16)
        view, anchor = np.nonzero(logits >= self._logit_floor)  # row-major: by view, then anchor
        scores = scores_from_logits(logits[view, anchor])
        keep = scores >= self.score_threshold
        view, anchor, scores = view[keep], anchor[keep], scores[keep]
        boxes, points = decode_boxes(regressors[view, anchor], self.anchors[anchor], self.input_size)
        bounds = np.searchsorted(view, np.arange(len(pictures) + 1))
        return [(boxes[a:b], points[a:b], scores[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]

    def _upright_looks(self, images: Sequence[np.ndarray], owners: list[int], points: np.ndarray
                       ) -> list[tuple[np.ndarray, np.ndarray, float] | None]:
        """One upright look per face: `images[owners[f]]` seen through the view that `points[f]`
        (F, 6, 2) put level and centred; per face (box (4,), points (6, 2) in image pixels, score),
        or None where the view shows no face in its middle. The box is the image-axis bounds of
        the view's box mapped back (a level face's box, tilted with the face, then bounded)."""
        views = upright_view_transforms(points, self.input_size)  # (F, 2, 3) image -> view pixels
        pictures = np.stack([cv2.warpAffine(images[i], view, (self.input_size, self.input_size),
                                            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
                             for i, view in zip(owners, views)])
        centre = np.array([0.5, 0.5], np.float32)
        looks: list[tuple[np.ndarray, np.ndarray, float] | None] = []
        for view, (b, p, s) in zip(views, self._decoded(pictures)):
            if not len(s):
                looks.append(None)  # the face is not seen again
                continue
            b, p, s = weighted_nms(b, p, s, self.iou_threshold)
            nearest = int(np.argmin(np.linalg.norm((b[:, :2] + b[:, 2:]) / 2 - centre, axis=1)))
            if np.linalg.norm((b[nearest, :2] + b[nearest, 2:]) / 2 - centre) > 0.15:
                looks.append(None)  # what it sees is not the face in the middle of the view
                continue
            inverse = cv2.invertAffineTransform(view)
            x0, y0, x1, y1 = b[nearest] * self.input_size
            corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]) @ inverse[:, :2].T + inverse[:, 2]
            box = np.concatenate([corners.min(axis=0), corners.max(axis=0)]).astype(np.float32)
            pixels = p[nearest] * self.input_size  # (6, 2) view pixels
            looks.append((box, (pixels @ inverse[:, :2].T + inverse[:, 2]).astype(np.float32), float(s[nearest])))
        return looks

    def _refined(self, images: Sequence[np.ndarray], found: list[Detections]) -> list[Detections]:
        """Each face's points taken again from an upright view of it (see the module docstring)."""
        owners = [(i, k) for i, d in enumerate(found) for k in range(len(d))]
        if not owners:
            return found
        points = np.concatenate([d.points for d in found if len(d)])  # (F, 6, 2)
        looks = self._upright_looks(images, [i for i, _ in owners], points)
        new_points = [d.points.copy() for d in found]
        for (i, k), look in zip(owners, looks):
            if look is not None:  # else: keep its first points
                new_points[i][k] = look[1]
        return [Detections(d.boxes, d.scores, pts) for d, pts in zip(found, new_points)]

    def _follow(self, images: Sequence[np.ndarray], sources: Sequence[Detections]) -> list[Detections | None]:
        """Each image's faces found again from `sources` (the keyframe's detections), one upright
        look per face; None for an image whose source has no face or that loses any of them."""
        owners = [(i, k) for i, d in enumerate(sources) for k in range(len(d))]
        out: list[Detections | None] = [None] * len(images)
        if not owners:
            return out
        points = np.concatenate([d.points for d in sources if len(d)])  # (F, 6, 2)
        looks = self._upright_looks(images, [i for i, _ in owners], points)
        per_image: dict[int, list] = {}
        for (i, _), look in zip(owners, looks):
            per_image.setdefault(i, []).append(look)
        for i, faces in per_image.items():
            if all(f is not None for f in faces):
                out[i] = Detections(np.stack([f[0] for f in faces]), np.array([f[2] for f in faces], np.float32),
                                    np.stack([f[1] for f in faces]))
        return out

    def _merge(self, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Detections:
        if not parts:
            return Detections.empty_with_points()
        boxes, points, scores = (np.concatenate(x) for x in zip(*parts))
        boxes, points, scores = weighted_nms(boxes, points, scores, self.iou_threshold)
        if self.min_face_size is None:
            return Detections(boxes, scores, points)
        keep = (boxes[:, 2] - boxes[:, 0]) >= self.min_face_size
        return Detections(boxes[keep], scores[keep], points[keep])


def _inside_tile(boxes: np.ndarray, view: View, height: int, width: int) -> np.ndarray:
    """(K,) bool: the box lies inside the tile, clear of every edge that is not the image's."""
    margin = TILE_EDGE_MARGIN * view.side
    x1, y1 = view.x0 + view.side, view.y0 + view.side
    left = (boxes[:, 0] >= view.x0 + margin) | (view.x0 <= 0)
    top = (boxes[:, 1] >= view.y0 + margin) | (view.y0 <= 0)
    right = (boxes[:, 2] <= x1 - margin) | (x1 >= width)
    bottom = (boxes[:, 3] <= y1 - margin) | (y1 >= height)
    return left & top & right & bottom
