"""Validate an ensemble: challenge metrics, calibration (ECE, NLL, Brier) and mean uncertainty of
each member, the ensemble, temperature scaling and MC dropout, on the validation split.

Writes metrics.csv, metrics.md, summary.json, reliability/<method>.png and selective prediction
(selective.csv, selective_curves.csv, selective/<task>.png) under --out; see
emenet.evaluation.validate_ensemble for the columns, and --help for the options.

Example:
    python Training/validate_ensemble.py --data_root data/affwild2 --names t0 t1 t2 --load_epochs 4 6 5 --out runs/v
"""
from emenet.cli import Script

script = Script("validate-ensemble", "Training/validate_ensemble.py", __doc__)
build_parser, main = script.build_parser, script.main

if __name__ == "__main__":
    raise SystemExit(main())
