"""Write the challenge submission of an ensemble (see emenet.cli.test_ensemble, or --help).

Example:
    python Training/test_ensemble.py --names teacher_0 teacher_1 --load_epochs 4 6 --test_set_file test_set.parquet
"""
from emenet.cli import Script

script = Script("test-ensemble", "Training/test_ensemble.py", __doc__)
build_parser, main = script.build_parser, script.main

if __name__ == "__main__":
    raise SystemExit(main())
