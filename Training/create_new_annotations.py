"""Run an ensemble over every frame of every train and validation video; writes Parquet soft labels.

Example:
    python Training/create_new_annotations.py --data_root data/affwild2 --names teacher_exp_0 teacher_exp_1 \
        --load_epochs 4 8 --out annotations/round_0
"""
from emenet.cli import Script

script = Script("annotate", "Training/create_new_annotations.py", __doc__)
build_parser, main = script.build_parser, script.main

if __name__ == "__main__":
    raise SystemExit(main())
