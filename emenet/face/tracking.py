"""Face tracks: the same person's boxes linked across frames, surviving short gaps.

`FaceTracker` is online: feed it each frame's `Detections` in order (`update`). A detection
joins the active track whose last box it overlaps (IoU) or lies close to (centre distance in
units of the track's box width) and matches in size; unmatched detections start new tracks;
a track that has not been seen for more than `max_gap` frames is finished. Every track is
kept, so a caller can follow every person; `main_track` is the most persistent one (the
most frames with a detection), which is the subject of a talking-head video. A spurious
detection (a face printed on a t-shirt, a poster) comes and goes, so its tracks stay short.

`filter_tracks` keeps the tracks that matter to a whole video, numbered 0, 1, ... in order of
appearance: it drops tracks with fewer than `min_length` detections and "body faces", tracks
found mostly on the chest of a more persistent face in the same frames (a face printed on a
t-shirt, which a frontal-face cascade finds, can be detected for seconds at a time). The most
persistent track is always kept, so a short clip still gives its face.

    >>> tracker = FaceTracker()
    >>> for index, frame in enumerate(frames):  # doctest: +SKIP
    ...     tracker.update(index, detector(frame))
    >>> subject = tracker.main_track()  # doctest: +SKIP
    >>> kept, dropped = filter_tracks(tracker.tracks, min_length=25)  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from emenet.face.detector import Detections


@dataclass
class Track:
    """One face's detections: frame indices (increasing), boxes `[x0, y0, x1, y1]`, scores and,
    from a landmark detector, each detection's points (P, 2) (empty when the detector gives none)."""

    track_id: int
    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    points: list[np.ndarray] = field(default_factory=list)

    def add(self, frame_index: int, box: np.ndarray, score: float, points: np.ndarray | None = None) -> None:
        self.frames.append(int(frame_index))
        self.boxes.append(np.asarray(box, np.float32))
        self.scores.append(float(score))
        if points is not None:
            self.points.append(np.asarray(points, np.float32))

    @property
    def has_points(self) -> bool:
        """Every detection of the track came with points."""
        return bool(self.frames) and len(self.points) == len(self.frames)

    def point_array(self) -> np.ndarray | None:
        """(n, P, 2) points of every detection, or None when the detections have none."""
        return np.stack(self.points).astype(np.float32) if self.has_points else None

    @property
    def num_detections(self) -> int:
        return len(self.frames)

    @property
    def first_frame(self) -> int:
        return self.frames[0]

    @property
    def last_frame(self) -> int:
        return self.frames[-1]

    @property
    def last_box(self) -> np.ndarray:
        return self.boxes[-1]

    def frame_array(self) -> np.ndarray:
        return np.asarray(self.frames, np.int64)

    def box_array(self) -> np.ndarray:
        return np.asarray(self.boxes, np.float32).reshape(-1, 4)

    def mean_area(self) -> float:
        wh = self.box_array()[:, 2:] - self.box_array()[:, :2]
        return float((wh[:, 0] * wh[:, 1]).mean()) if self.frames else 0.0


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (A, 4) and (B, 4) `[x0, y0, x1, y1]` boxes -> (A, B)."""
    a, b = np.asarray(a, np.float64)[:, None], np.asarray(b, np.float64)[None]
    inter_wh = np.clip(np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2]), 0, None)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


class FaceTracker:
    """Greedy IoU / centre-distance association of per-frame detections into tracks.

    A detection may join a track last seen at most `max_gap` frames ago when their IoU is
    at least `iou_threshold`, or their centres are closer than `centre_threshold` track box
    widths; either way the box sizes must agree within a factor `max_size_ratio`. Pairs are
    taken best first (IoU plus closeness), each track and detection at most once.
    """

    def __init__(self, iou_threshold: float = 0.3, centre_threshold: float = 0.5, max_size_ratio: float = 1.6,
                 max_gap: int = 8):
        self.iou_threshold = iou_threshold
        self.centre_threshold = centre_threshold
        self.max_size_ratio = max_size_ratio
        self.max_gap = max_gap
        self.tracks: list[Track] = []
        self._last_frame = -1

    def active_tracks(self, frame_index: int) -> list[Track]:
        """Tracks that a detection in `frame_index` may still join."""
        return [t for t in self.tracks if frame_index - t.last_frame <= self.max_gap + 1]

    def _affinity(self, tracks: list[Track], boxes: np.ndarray) -> np.ndarray:
        """(tracks, detections) affinity; -inf where the pair may not be linked."""
        last = np.stack([t.last_box for t in tracks]).astype(np.float64)  # (A, 4)
        iou = box_iou(last, boxes)
        size_t = np.maximum(last[:, 2] - last[:, 0], 1e-6)[:, None]
        size_d = np.maximum(boxes[:, 2] - boxes[:, 0], 1e-6)[None]
        centre_t = (last[:, None, :2] + last[:, None, 2:]) / 2
        centre_d = (boxes[None, :, :2] + boxes[None, :, 2:]) / 2
        distance = np.linalg.norm(centre_t - centre_d, axis=-1) / size_t  # in track box widths
        size_ok = np.maximum(size_t / size_d, size_d / size_t) <= self.max_size_ratio
        ok = size_ok & ((iou >= self.iou_threshold) | (distance <= self.centre_threshold))
        return np.where(ok, iou + np.clip(1.0 - distance, 0.0, None), -np.inf)

    def update(self, frame_index: int, detections: Detections) -> list[int]:
        """Link one frame's detections; returns the track id given to each detection."""
        if frame_index <= self._last_frame:
            raise ValueError(f"frames must come in increasing order; got {frame_index} after {self._last_frame}")
        self._last_frame = frame_index
        boxes = np.asarray(detections.boxes, np.float64)
        ids = [-1] * len(boxes)
        active = self.active_tracks(frame_index)
        if active and len(boxes):
            affinity = self._affinity(active, boxes)
            used_tracks: set[int] = set()
            for flat in np.argsort(-affinity, axis=None):
                a, d = np.unravel_index(flat, affinity.shape)
                if not np.isfinite(affinity[a, d]):
                    break
                if a in used_tracks or ids[d] != -1:
                    continue
                used_tracks.add(a)
                ids[d] = active[a].track_id
                active[a].add(frame_index, boxes[d], detections.scores[d], _points(detections, d))
        for d, box in enumerate(boxes):
            if ids[d] == -1:
                track = Track(len(self.tracks))
                track.add(frame_index, box, detections.scores[d], _points(detections, d))
                self.tracks.append(track)
                ids[d] = track.track_id
        return ids

    def main_track(self) -> Track | None:
        """The most persistent track (most frames with a detection; ties: the larger face)."""
        return select_main_track(self.tracks)


def _points(detections: Detections, index: int) -> np.ndarray | None:
    return None if detections.points is None else detections.points[index]


def select_main_track(tracks: list[Track]) -> Track | None:
    if not tracks:
        return None
    return max(tracks, key=lambda t: (t.num_detections, t.mean_area()))


# A face's body region, where a second "face" is a print on clothing, not a person: centres at
# most BODY_HALF_WIDTH face widths left or right of the face's centre, between its chin (the
# box's bottom) and BODY_DEPTH face heights below it.
BODY_HALF_WIDTH = 1.5
BODY_DEPTH = 4.0


def body_region_hits(candidate: Track, face: Track) -> np.ndarray:
    """(k,) bool over the frames where both tracks have a detection: is the candidate's box
    centre in the body region (below the chin, see BODY_HALF_WIDTH/BODY_DEPTH) of `face`'s box?"""
    _, ic, iface = np.intersect1d(candidate.frame_array(), face.frame_array(), assume_unique=True,
                                  return_indices=True)
    cand, other = candidate.box_array()[ic], face.box_array()[iface]  # (k, 4) each
    width, height = other[:, 2] - other[:, 0], other[:, 3] - other[:, 1]
    dx = (cand[:, 0] + cand[:, 2]) / 2 - (other[:, 0] + other[:, 2]) / 2
    cy = (cand[:, 1] + cand[:, 3]) / 2
    return (np.abs(dx) <= BODY_HALF_WIDTH * width) & (cy > other[:, 3]) & (cy <= other[:, 3] + BODY_DEPTH * height)


def is_body_face(candidate: Track, faces: list[Track]) -> bool:
    """At least half of the candidate's detections lie in the body region of one of `faces`."""
    return any(body_region_hits(candidate, face).sum() >= 0.5 * candidate.num_detections for face in faces)


def _renumbered(track: Track, track_id: int) -> Track:
    return Track(track_id, list(track.frames), list(track.boxes), list(track.scores), list(track.points))


class TrackSelection(NamedTuple):
    """`kept`: ids 0..K-1 by first appearance (ties: leftmost first); `dropped`: ids K, K+1, ..."""

    kept: list[Track]
    dropped: list[Track]

    @property
    def all(self) -> list[Track]:
        """Every track, its id its index."""
        return self.kept + self.dropped


def filter_tracks(tracks: list[Track], min_length: int = 1, drop_body_faces: bool = True) -> TrackSelection:
    """Keep the tracks that are people: at least `min_length` detections and (with
    `drop_body_faces`) not a body face of a more persistent kept track. The most persistent
    track is always kept. Returns renumbered copies (see TrackSelection); the input is unchanged.
    """
    if min_length < 1:
        raise ValueError(f"min_length must be at least 1, got {min_length}")
    main = select_main_track(tracks)
    kept: list[Track] = []
    dropped: list[Track] = []
    # Most persistent first, so a candidate is only judged against longer, already kept faces.
    for track in sorted(tracks, key=lambda t: (-t.num_detections, -t.mean_area(), t.track_id)):
        long_enough = track.num_detections >= min_length
        if track is main or (long_enough and not (drop_body_faces and is_body_face(track, kept))):
            kept.append(track)
        else:
            dropped.append(track)

    def order(t: Track) -> tuple[int, float, int]:
        return t.first_frame, float(t.boxes[0][0]), t.track_id

    kept, dropped = sorted(kept, key=order), sorted(dropped, key=order)
    return TrackSelection([_renumbered(t, i) for i, t in enumerate(kept)],
                          [_renumbered(t, len(kept) + i) for i, t in enumerate(dropped)])


def smooth_track_boxes(frames: np.ndarray, boxes: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Gaussian smoothing of a track's boxes over time (sigma in frames), centred, gap-aware.

    `frames` (n,) increasing frame indices, `boxes` (n, 4). Each box becomes the weighted
    mean of the track's boxes within 3 sigma frames; a detector's frame-to-frame jitter
    (a few pixels of position, a few % of size) is averaged out while head motion stays.
    """
    return smooth_track_values(frames, np.asarray(boxes).reshape(-1, 4), sigma)


def smooth_track_points(frames: np.ndarray, points: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """`smooth_track_boxes` for landmarks: (n, P, 2) points, each coordinate smoothed over time,
    so the crops aligned on them do not jitter from frame to frame."""
    points = np.asarray(points)
    return smooth_track_values(frames, points.reshape(len(points), -1), sigma).reshape(points.shape)


def smooth_track_values(frames: np.ndarray, values: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Gap-aware Gaussian smoothing over time of (n, D) per-detection values (see smooth_track_boxes)."""
    frames = np.asarray(frames, np.int64)
    boxes = np.asarray(values, np.float64).reshape(len(frames), -1)
    width = boxes.shape[1]
    if sigma <= 0 or len(frames) < 2:
        return boxes.astype(np.float32)
    radius = int(np.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    offset = frames - frames[0]
    length = int(offset[-1]) + 1
    dense = np.zeros((length + 2 * radius, width))  # padded by `radius` on both sides
    mask = np.zeros(length + 2 * radius)
    dense[offset + radius], mask[offset + radius] = boxes, 1.0
    # Convolve the values and the presence mask alike; their ratio is the local weighted mean.
    num = np.stack([np.convolve(dense[:, k], kernel, mode="valid") for k in range(width)], axis=1)  # (length, D)
    den = np.convolve(mask, kernel, mode="valid")
    return (num[offset] / den[offset, None]).astype(np.float32)
