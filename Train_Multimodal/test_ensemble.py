"""Write the challenge submission of an EMENet-VA (visual-audio) ensemble; audio windows come from each
test video's own track (see emenet.inference.cli_submission, or --help).

Example:
    python Train_Multimodal/test_ensemble.py --names teacher_exp_0 teacher_exp_1 --load_epochs 4 \\
        --test_set_file test_set.parquet --window_size 0.63 --sr 16000
"""
from emenet.inference.cli_submission import main

if __name__ == "__main__":
    raise SystemExit(main(prog="Train_Multimodal/test_ensemble.py", audio=True))
