"""Fit split-conformal prediction sets and intervals for an ensemble on held-out validation videos.

Saves conformal_<key>.json beside the checkpoints (the member files by SHA-256, the video split,
thresholds and the coverage measured on the held-out half); `emenet predict --coverage 0.9` and
`inference_one_image.py --coverage 0.9` then add EXPR_set, AU<k>_set, valence_lo/hi,
arousal_lo/hi and abstain_<task> per frame. See emenet.conformal and --help.

Example:
    python Training/calibrate_conformal.py --data_root data/affwild2 --names t0 t1 t2 --load_epochs 4 6 5
"""
from emenet.cli import Script

script = Script("conformal", "Training/calibrate_conformal.py", __doc__)
build_parser, main = script.build_parser, script.main

if __name__ == "__main__":
    raise SystemExit(main())
