#!/usr/bin/env bash
# Iterative self-distillation of EMENet-VA: N audio-visual teachers, then R rounds of N students.
# Every option of `emenet distill` is accepted (a later --modality overrides the default), e.g.
#   Train_Multimodal/run_student_rounds.sh --data_root data/affwild2 --members 5 --rounds 3 --auxiliary VAD
# Finished work is skipped, so rerunning the same command resumes.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
emenet_bin="${EMENET_BIN:-$here/.venv/bin/emenet}"
[ -x "$emenet_bin" ] || emenet_bin="emenet"
exec "$emenet_bin" distill --modality audiovisual "$@"
