"""Train an EMENet-VA student on an ensemble's annotation (soft labels from create_new_annotations.py).

Example:
    python Train_Multimodal/train_student.py --data_root data/affwild2 --annotation annotations/round_0 \
        --name student_round_1_exp_0 --seed 0 [--T 1.0] [--auxiliary VAD]
"""
from emenet.cli import Script

script = Script("train-student", "Train_Multimodal/train_student.py", __doc__,
                config_defaults={"modality": "audiovisual"})
build_parser, main = script.build_parser, script.main

if __name__ == "__main__":
    raise SystemExit(main())
