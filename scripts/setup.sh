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
