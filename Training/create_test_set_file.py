"""Index the challenge test set: per test name its tasks, video, frame rate, every video frame
and which frames have a face crop, so a submission can give a row for every frame.

Writes Parquet (or CSV when --out ends in .csv); see emenet.challenge.test_set for the columns,
and emenet.cli.test_set (or --help) for the options.

Example:
    python Training/create_test_set_file.py --data_dir data/affwild2 --out test_set.parquet
"""
from emenet.cli import Script

script = Script("test-set", "Training/create_test_set_file.py", __doc__)
build_parser, main = script.build_parser, script.main

if __name__ == "__main__":
    raise SystemExit(main())
