"""Out-of-distribution detection by the ensemble's uncertainty: AUROC of epistemic (and total)
uncertainty separating generated OOD clips from in-distribution validation clips.

Writes ood_auroc.csv, ood_auroc.md, ood_clips.csv, ood_histogram.png and ood_summary.json under
--out; see emenet.cli.ood for the options (or --help).

Example:
    python Training/validate_ensemble_OOD.py --data_root data/affwild2 --names t0 t1 t2 --load_epochs 4 --out runs/ood
"""
from emenet.cli import Script

script = Script("ood", "Training/validate_ensemble_OOD.py", __doc__)
build_parser, main = script.build_parser, script.main

if __name__ == "__main__":
    raise SystemExit(main())
