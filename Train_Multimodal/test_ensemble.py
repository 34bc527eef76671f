"""Write the challenge submission of an EMENet-VA (visual-audio) ensemble; audio windows come from each
test video's own track (see emenet.cli.test_ensemble, or --help).

Example:
    python Train_Multimodal/test_ensemble.py --names teacher_exp_0 teacher_exp_1 --load_epochs 4 \\
        --test_set_file test_set.parquet --window_size 0.63 --sr 16000
"""
from emenet.cli import Script

script = Script("test-ensemble", "Train_Multimodal/test_ensemble.py", __doc__, defaults={"audio": True})
build_parser, main = script.build_parser, script.main

if __name__ == "__main__":
    raise SystemExit(main())
