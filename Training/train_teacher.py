"""Train a supervised multitask EMENet-V teacher on Aff-wild2 (or `emenet synth` data).

Example:
    python Training/train_teacher.py --data_root data/affwild2 --name teacher_exp_0 --seed 0
    python Training/train_teacher.py --config my.yaml --load_epoch -1     # resume the latest epoch
"""
from emenet.cli import Script

script = Script("train", "Training/train_teacher.py", __doc__)
build_parser, main = script.build_parser, script.main

if __name__ == "__main__":
    raise SystemExit(main())
