"""Index the challenge test set: per test name its tasks, video, frame rate, every video frame
and which frames have a face crop, so a submission can give a row for every frame.

Writes Parquet (or CSV when --out ends in .csv); see emenet.challenge.test_set for the columns,
and emenet.inference.test_set_cli (or --help) for the options.

Example:
    python Training/create_test_set_file.py --data_dir data/affwild2 --out test_set.parquet
"""
from emenet.inference.test_set_cli import main

if __name__ == "__main__":
    raise SystemExit(main())
