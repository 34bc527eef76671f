"""Which face detector a command uses, and its command-line flags (`--detector` and friends).

`DetectorOptions` is a small frozen record: it builds the detector (`build`) and is stored with
folder-mode results, so outputs made with another detector are not mistaken for this run's.
BlazeFace's options (`--detector_model`, `--min_face_size`, `--detection_threshold`) do not apply
to the Haar cascade, which keeps its own defaults.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from typing import Any

from emenet.errors import EMENetInputError
from emenet.face.blazeface.detector import DEFAULT_MODEL, DEFAULT_SCORE_THRESHOLD, DEFAULT_SEARCH_FACE_SIZE, REFINE_ROUNDS
from emenet.face.blazeface.network import MODELS
from emenet.face.detector import DEFAULT_DETECTOR, DETECTORS, FaceDetector, make_detector


@dataclass(frozen=True)
class DetectorOptions:
    name: str = DEFAULT_DETECTOR
    model: str = DEFAULT_MODEL
    min_face_size: float | None = None
    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    refine_points: int = REFINE_ROUNDS
    detect_every: int = 1  # search every K-th video frame, follow the faces in between (BlazeFace)

    def __post_init__(self) -> None:
        if self.name not in DETECTORS:
            raise EMENetInputError(f"unknown face detector {self.name!r}; valid: {', '.join(DETECTORS)}")
        if self.model not in MODELS:
            raise EMENetInputError(f"unknown BlazeFace model {self.model!r}; valid: {', '.join(MODELS)}")
        if self.min_face_size is not None and self.min_face_size <= 0:
            raise EMENetInputError(f"--min_face_size must be positive, got {self.min_face_size}")
        if not 0 < self.score_threshold < 1:
            raise EMENetInputError(f"--detection_threshold must be in (0, 1), got {self.score_threshold}")
        if self.refine_points not in (0, 1, 2, 3):
            raise EMENetInputError(f"--refine_points must be 0, 1, 2 or 3, got {self.refine_points}")
        if self.detect_every < 1:
            raise EMENetInputError(f"--detect_every must be at least 1, got {self.detect_every}")

    def build(self) -> FaceDetector:
        if self.name == "haar":
            return make_detector("haar")
        return make_detector(self.name, model=self.model, min_face_size=self.min_face_size,
                             score_threshold=self.score_threshold, refine_points=self.refine_points,
                             detect_every=self.detect_every)

    def record(self) -> dict[str, Any]:
        """JSON form (only what applies to the chosen detector; `detect_every` only when set, so
        outputs made before it existed still match)."""
        if self.name == "haar":
            return {"name": self.name}
        record = asdict(self)
        if self.detect_every == 1:
            del record["detect_every"]
        return record


def add_detector_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR,
                   help="face detector: blazeface (MediaPipe's CNN with eye, nose and mouth points; crops are "
                        "aligned on them) or haar (OpenCV's frontal-face cascade, box crops); default %(default)s")
    p.add_argument("--detector_model", choices=MODELS, default=DEFAULT_MODEL,
                   help="BlazeFace model: full_range (faces from about 8%% of the frame up) or short_range "
                        "(faster, faces near the camera); default %(default)s")
    p.add_argument("--min_face_size", type=float, default=None,
                   help="smallest face to report, in pixels (box width); large frames are searched in tiles so "
                        f"that faces this small are found (BlazeFace; default: tiles find {DEFAULT_SEARCH_FACE_SIZE} px "
                        "faces and every face found is reported)")
    p.add_argument("--detection_threshold", type=float, default=DEFAULT_SCORE_THRESHOLD,
                   help="minimum BlazeFace detection score (default %(default)s)")
    p.add_argument("--refine_points", type=int, default=REFINE_ROUNDS,
                   help="upright second looks at each face that refine its points (steadier, rotation-invariant "
                        "crops; each costs one more detector pass per face; 0: faster; default %(default)s)")
    p.add_argument("--detect_every", type=int, default=1,
                   help="search for faces in every K-th video frame only; the frames in between follow the faces "
                        "found (one detector pass per face instead of a search and the refinements: faster, "
                        "faces appear up to K-1 frames late; BlazeFace; default %(default)s: every frame)")


def detector_options_from_args(args: argparse.Namespace) -> DetectorOptions:
    return DetectorOptions(getattr(args, "detector", DEFAULT_DETECTOR), getattr(args, "detector_model", DEFAULT_MODEL),
                           getattr(args, "min_face_size", None),
                           getattr(args, "detection_threshold", DEFAULT_SCORE_THRESHOLD),
                           getattr(args, "refine_points", REFINE_ROUNDS), getattr(args, "detect_every", 1))
