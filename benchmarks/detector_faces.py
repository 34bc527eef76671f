"""Faces found by the Haar cascade and by BlazeFace on photos and a video of real people.

Writes a Markdown table (faces found / faces present) to stdout and, with --out, to a file.
The photos are the repository's real ones (example_image/, tests/data/faces/, see their
READMEs) and compositions of them; the video is ../shared/data/utterance_1.mp4.

    python benchmarks/detector_faces.py --out benchmarks/results/detector_faces.md
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from emenet.data.images import read_rgb
from emenet.face import HaarFaceDetector
from emenet.face.blazeface import BlazeFaceDetector
from emenet.face.tracking import box_iou
from emenet.video.predict import iter_video_chunks

REPO = Path(__file__).resolve().parents[1]
FACES = REPO / "tests" / "data" / "faces"
ASTRONAUT = REPO / "example_image" / "astronaut_photo.jpg"


def side_by_side(heads: list[np.ndarray], scale: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Heads pasted left to right on a plain wall, then scaled: (image, (K, 4) head boxes)."""
    height = max(h.shape[0] for h in heads) + 60
    width = sum(h.shape[1] for h in heads) + 20 * (len(heads) + 1)
    canvas = np.full((height, width, 3), (150, 140, 125), np.uint8)
    x, boxes = 20, []
    for head in heads:
        canvas[30:30 + head.shape[0], x:x + head.shape[1]] = head
        boxes.append([x, 30, x + head.shape[1], 30 + head.shape[0]])
        x += head.shape[1] + 20
    return cv2.resize(canvas, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR), np.array(boxes) * scale


def cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(what it shows, image, (K, 4) boxes of the heads present)."""
    astronaut, grace = read_rgb(ASTRONAUT), read_rgb(FACES / "grace_hopper.jpg")
    cameraman = read_rgb(FACES / "cameraman.jpg")
    whole = lambda im: np.array([[0, 0, im.shape[1], im.shape[0]]], float)  # noqa: E731
    a_head, g_head, c_head = astronaut[20:230, 120:330], grace[60:400, 100:430], cameraman[60:260, 140:340]
    group, group_boxes = side_by_side([a_head, cv2.resize(g_head, None, fx=0.6, fy=0.6), c_head, a_head[:, ::-1],
                                       cv2.resize(g_head, None, fx=0.45, fy=0.45)])
    turned = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((256, 256), 30, 1.0), (512, 512),
                            borderMode=cv2.BORDER_REPLICATE)
    small = cv2.resize(a_head, None, fx=100 / 95, fy=100 / 95, interpolation=cv2.INTER_AREA)  # a 100 px face
    frame4k = np.full((2160, 3840, 3), 90, np.uint8)
    places = [(400, 300), (1850, 1000), (3500, 1900)]
    for x, y in places:
        frame4k[y:y + small.shape[0], x:x + small.shape[1]] = small
    boxes4k = np.array([[x, y, x + small.shape[1], y + small.shape[0]] for x, y in places], float)
    return [("frontal portrait (astronaut, 512x512)", astronaut, whole(astronaut)),
            ("frontal, glasses and cap (Grace Hopper, 512x600)", grace, whole(grace)),
            ("man turned half away, black and white (cameraman, 512x512)", cameraman, whole(cameraman)),
            ("head tilted 30 degrees (astronaut turned)", turned, whole(turned)),
            ("five people side by side (1725x450)", group, group_boxes),
            ("three 100 px faces in a 3840x2160 frame", frame4k, boxes4k)]


def count(detections, heads: np.ndarray) -> tuple[int, int]:
    """(heads with a detection inside them, detections inside no head)."""
    if len(detections) == 0:
        return 0, 0
    overlap = box_iou(detections.boxes, heads) > 0.0
    return int(overlap.any(axis=0).sum()), int((~overlap.any(axis=1)).sum())


def video_row(path: Path, detectors: dict) -> list[str]:
    frames = np.concatenate([c.frames for c in iter_video_chunks(path, 64)])
    cells = []
    for detector in detectors.values():
        found = [detector(f) for f in frames]
        # the man's head is the upper half of the frame; below it is his t-shirt print
        centre_y = [(d.boxes[:, 1] + d.boxes[:, 3]) / 2 / f.shape[0] for d, f in zip(found, frames)]
        head = sum(bool((c < 0.5).any()) for c in centre_y)
        chest = sum(int((c >= 0.5).sum()) for c in centre_y)
        cells.append(f"{head}/{len(frames)} frames ({chest} false on the t-shirt)")
    return [f"talking man, video ({path.name}, 640x360)", *cells]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, default=REPO.parent / "shared" / "data" / "utterance_1.mp4",
                        help="the real video (default ../shared/data/utterance_1.mp4)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    detectors = {"Haar cascade": HaarFaceDetector(), "BlazeFace (full-range, default)": BlazeFaceDetector()}
    rows = []
    for name, image, heads in cases():
        cells = []
        for detector in detectors.values():
            hit, false = count(detector(image), heads)
            cells.append(f"{hit}/{len(heads)}" + (f" (+{false} false)" if false else ""))
        rows.append([name, *cells])
    if args.video.is_file():
        rows.append(video_row(args.video, detectors))
    header = ["photo / video", *detectors]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        from emenet.io_utils import write_atomic
        write_atomic(args.out, lambda p: p.write_text(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
