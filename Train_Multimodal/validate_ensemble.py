"""Validate an ensemble of EMENet-VA (or mixed) members: challenge metrics, calibration and uncertainty
of each member, the ensemble, temperature scaling and MC dropout, on the validation split.

Example:
    python Train_Multimodal/validate_ensemble.py --data_root data/affwild2 --names t0 t1 t2 --load_epochs 4 --out runs/v
"""
from emenet.cli import Script

script = Script("validate-ensemble", "Train_Multimodal/validate_ensemble.py", __doc__,
                defaults={"window_size": 0.63, "sr": 16000})
build_parser, main = script.build_parser, script.main

if __name__ == "__main__":
    raise SystemExit(main())
