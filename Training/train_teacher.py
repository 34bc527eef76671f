"""Train a supervised multitask EMENet-V teacher on Aff-wild2 (or `emenet synth` data).

Example:
    python Training/train_teacher.py --data_root data/affwild2 --name teacher_exp_0 --seed 0
    python Training/train_teacher.py --config my.yaml --load_epoch -1     # resume the latest epoch
"""
from emenet.cli import run_train_teacher

if __name__ == "__main__":
    raise SystemExit(run_train_teacher())
