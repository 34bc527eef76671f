"""Score a checkpoint on the validation split with the challenge metrics; writes JSON.

Example:
    python Training/validate.py --data_root data/affwild2 --name teacher_exp_0 --load_epoch 4 --out val.json
    python Training/validate.py --data_root data/affwild2 --checkpoint checkpoints/x/net_epoch_4_x.pth
"""
from emenet.cli import Script

script = Script("validate", "Training/validate.py", __doc__)
build_parser, main = script.build_parser, script.main

if __name__ == "__main__":
    raise SystemExit(main())
