"""Write the challenge submission of an ensemble (see emenet.inference.cli_submission, or --help).

Example:
    python Training/test_ensemble.py --names teacher_0 teacher_1 --load_epochs 4 6 --test_set_file test_set.parquet
"""
from emenet.inference.cli_submission import main

if __name__ == "__main__":
    raise SystemExit(main(prog="Training/test_ensemble.py"))
