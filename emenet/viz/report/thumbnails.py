"""Small JPEG face crops of sampled frames, collected while a video is predicted, for the report's
hover and click preview."""
from __future__ import annotations

import base64

import cv2
import numpy as np

THUMB_SIZE = 64
# At most this many thumbnails per track: a 10-minute video stays a few MB.
MAX_THUMBS = 400


class ThumbnailCollector:
    """on_chunk callback of emenet.video.predict.predict_video_tracks: for every `step`-th frame
    where a track has a face, its crop region resized to 64x64 and JPEG-encoded (base64). The
    step doubles (and the extra thumbnails go) whenever a track passes 2 * `max_thumbs`, so
    a video of unknown length keeps between `max_thumbs` and twice that per track."""

    def __init__(self, max_thumbs: int = MAX_THUMBS, quality: int = 80):
        self.step = 1
        self.max_thumbs = max_thumbs
        self.quality = quality
        self.thumbs: dict[int, dict[int, str]] = {}  # track -> frame -> base64 JPEG

    def __call__(self, chunk, tracks, geometries) -> None:
        frames = chunk.frames
        for k, frame in enumerate(frames.frames):
            index = frames.start + k
            if index % self.step:
                continue
            for g in geometries:
                if not g.face_found[index]:
                    continue
                cx, cy, side = g.regions[index]
                thumb = crop_square(frame, float(cx), float(cy), float(side))
                ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(thumb, cv2.COLOR_RGB2BGR),
                                        [cv2.IMWRITE_JPEG_QUALITY, self.quality])
                if ok:
                    self.thumbs.setdefault(int(g.track_id), {})[int(index)] = base64.b64encode(jpeg).decode("ascii")
            if any(len(t) > 2 * self.max_thumbs for t in self.thumbs.values()):
                self.step *= 2
                self.thumbs = {tid: {f: v for f, v in t.items() if f % self.step == 0} for tid, t in self.thumbs.items()}


def crop_square(frame: np.ndarray, cx: float, cy: float, side: float, size: int = THUMB_SIZE) -> np.ndarray:
    """The square of `side` pixels centred on (cx, cy), zero-padded where it leaves the frame, as size x size."""
    h, w = frame.shape[:2]
    half = max(side, 2.0) / 2
    x0, y0, x1, y1 = (int(round(v)) for v in (cx - half, cy - half, cx + half, cy + half))
    out = np.zeros((y1 - y0, x1 - x0, 3), dtype=np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    return cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)
