"""BlazeFace's SSD anchors, box decoding and weighted non-maximum suppression.

As MediaPipe's face detection graphs configure them (`face_detection_short_range.pbtxt`,
`face_detection_full_range.pbtxt`: SsdAnchorsCalculator, TensorsToDetectionsCalculator,
NonMaxSuppressionCalculator):

- Anchors: one grid per stride, `(x + 0.5) / cols, (y + 0.5) / rows`; consecutive layers
  with the same stride share a grid. Each layer contributes one anchor per cell (aspect
  ratio 1) plus one more when `interpolated_scale_aspect_ratio` is 1.0. Anchor sizes are
  fixed to 1 (`fixed_anchor_size: true`), so only centres matter. Short-range: 128x128
  input, strides 8, 16, 16, 16 -> 16x16x2 + 8x8x6 = 896 anchors. Full-range: 192x192,
  stride 4, no interpolated anchor -> 48x48 = 2304 anchors.
- Decoding: 16 values per anchor, `reverse_output_order` (x before y): box centre
  `(dx / S + ax, dy / S + ay)`, size `(w / S, h / S)`, then six keypoints `(kx / S + ax,
  ky / S + ay)`, S the input size; score `sigmoid(clip(logit, -100, 100))`.
- Weighted NMS (IoU, threshold 0.3): the best remaining detection and every remaining one
  overlapping it by IoU > 0.3 form a cluster; the output takes the best one's score and the
  score-weighted mean of the cluster's boxes and keypoints; the cluster leaves the pool.

Keypoints (MediaPipe's order): 0 right eye, 1 left eye (the subject's), 2 nose tip,
3 mouth centre, 4 right ear tragion, 5 left ear tragion.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_KEYPOINTS = 6
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose_tip", "mouth_centre", "right_ear", "left_ear")
RAW_SCORE_CLIP = 100.0  # score_clipping_thresh of the TensorsToDetections options
NMS_IOU_THRESHOLD = 0.3  # min_suppression_threshold of the NonMaxSuppression options


@dataclass(frozen=True)
class AnchorOptions:
    """The SsdAnchorsCalculator options that matter with fixed-size anchors."""

    input_size: int
    strides: tuple[int, ...]
    interpolated_anchor: bool


ANCHOR_OPTIONS = {
    "short_range": AnchorOptions(128, (8, 16, 16, 16), True),
    "full_range": AnchorOptions(192, (4,), False),
}


def ssd_anchor_centres(options: AnchorOptions) -> np.ndarray:
    """(A, 2) anchor centres `(x, y)` in [0, 1] of the model input, in the network's output order."""
    per_stride: dict[int, int] = {}
    for stride in options.strides:  # layers with equal strides share one grid
        per_stride[stride] = per_stride.get(stride, 0) + 1 + int(options.interpolated_anchor)
    grids = []
    for stride, per_cell in per_stride.items():
        cells = -(-options.input_size // stride)
        y, x = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        centres = np.stack([x, y], axis=-1).reshape(-1, 1, 2)  # (cells*cells, 1, 2), row-major
        grids.append(np.repeat(centres, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(grids).astype(np.float32)


def decode_boxes(regressors: np.ndarray, anchors: np.ndarray, input_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(..., A, 16) raw regressors -> boxes (..., A, 4) `[x0, y0, x1, y1]` and keypoints
    (..., A, 6, 2), both in [0, 1] units of the model input."""
    raw = np.asarray(regressors, np.float32) / np.float32(input_size)
    centre = raw[..., 0:2] + anchors
    half = raw[..., 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], axis=-1)
    keypoints = raw[..., 4:4 + 2 * NUM_KEYPOINTS].reshape(*raw.shape[:-1], NUM_KEYPOINTS, 2) + anchors[:, None, :]
    return boxes, keypoints


def scores_from_logits(logits: np.ndarray) -> np.ndarray:
    """sigmoid of the clipped logits (MediaPipe's sigmoid_score with score_clipping_thresh 100)."""
    clipped = np.clip(np.asarray(logits, np.float64), -RAW_SCORE_CLIP, RAW_SCORE_CLIP)
    return (1.0 / (1.0 + np.exp(-clipped))).astype(np.float32)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, 4) x (B, 4) `[x0, y0, x1, y1]` -> (A, B) intersection over union (0 for empty boxes)."""
    a, b = np.asarray(a, np.float64)[:, None], np.asarray(b, np.float64)[None]
    wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = np.clip(a[..., 2] - a[..., 0], 0, None) * np.clip(a[..., 3] - a[..., 1], 0, None)
    area_b = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray,
                 iou_threshold: float = NMS_IOU_THRESHOLD) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED non-maximum suppression of one image's detections.

    boxes (K, 4), keypoints (K, P, 2), scores (K,) -> the same for the M <= K kept faces,
    best first. The IoU matrix is computed once; each step takes one cluster.
    """
    order = np.argsort(-scores, kind="stable")
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    iou = iou_matrix(boxes, boxes)
    remaining = np.ones(len(scores), bool)
    out_boxes, out_points, out_scores = [], [], []
    for best in range(len(scores)):
        if not remaining[best]:
            continue
        cluster = remaining & (iou[best] > iou_threshold)
        cluster[best] = True  # a degenerate box (IoU 0 with itself) still stands for itself
        weights = scores[cluster].astype(np.float64)
        total = weights.sum()
        out_boxes.append((boxes[cluster] * weights[:, None]).sum(0) / total)
        out_points.append((keypoints[cluster] * weights[:, None, None]).sum(0) / total)
        out_scores.append(scores[best])
        remaining &= ~cluster
    if not out_scores:
        return (np.zeros((0, 4), np.float32), np.zeros((0, *keypoints.shape[1:]), np.float32),
                np.zeros((0,), np.float32))
    return (np.asarray(out_boxes, np.float32), np.asarray(out_points, np.float32),
            np.asarray(out_scores, np.float32))
