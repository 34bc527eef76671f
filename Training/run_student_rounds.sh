#!/usr/bin/env bash
# Iterative self-distillation: N teachers (seeds 0..N-1), then R rounds of N students, each round
# taught by the previous round's ensemble. Every option of `emenet distill` is accepted, e.g.
#   Training/run_student_rounds.sh --data_root data/affwild2 --members 5 --rounds 3 [--ray auto]
# Finished work is skipped, so rerunning the same command resumes.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
emenet_bin="${EMENET_BIN:-$here/.venv/bin/emenet}"
[ -x "$emenet_bin" ] || emenet_bin="emenet"
exec "$emenet_bin" distill "$@"
