"""One cold start: a fresh process that loads the models, runs a video until its first predicted
frames, marks the moments on stdout and stops. The `cold_start` workload times it from outside.

    python -m emenet.bench.first_frame VIDEO BACKEND BATCH CHECKPOINT [CHECKPOINT ...]

Prints `EMENET_READY` once the predictor is built (any ONNX export or int8 quantisation done)
and `EMENET_FIRST_FRAME` once the first chunk of frames is predicted (pass 1, face detection
over the whole video, comes first: predictions need the finished face tracks).
"""
from __future__ import annotations

import logging
import sys
import tempfile

READY_MARKER = "EMENET_READY"
FIRST_FRAME_MARKER = "EMENET_FIRST_FRAME"


class _FirstFrame(Exception):
    """Raised by the progress callback to stop the pipeline at its first predicted chunk."""


def _mark(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    video, backend, batch, *checkpoints = argv if argv is not None else sys.argv[1:]
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)  # the export's progress line
    from emenet.video.outputs import predict_video_to_files
    from emenet.inference.predictor import Predictor
    predictor = Predictor(checkpoints, backend=backend, batch_size=int(batch))
    _mark(READY_MARKER)

    def progress(stage: str, frames: int) -> None:
        if stage == "predicting":
            _mark(FIRST_FRAME_MARKER)
            raise _FirstFrame

    with tempfile.TemporaryDirectory(prefix="emenet-first-frame-") as out:
        try:
            predict_video_to_files(predictor, video, out, overwrite=True, progress=progress)
        except _FirstFrame:
            pass
    predictor.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
