"""Run an ensemble over every frame of every train and validation video; writes Parquet soft labels.

Example:
    python Training/create_new_annotations.py --data_root data/affwild2 --names teacher_exp_0 teacher_exp_1 \
        --load_epochs 4 8 --out annotations/round_0
"""
from emenet.cli import run_create_annotations

if __name__ == "__main__":
    raise SystemExit(run_create_annotations())
