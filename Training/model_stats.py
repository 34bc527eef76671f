"""Parameters and multiply-accumulates per frame of an EMENet model, beside the paper's figures.

MACs come from torch's FLOP counter (MACs = FLOPs / 2; convolutions and matrix products
only); see `emenet.profiling` for what is counted and why the paper's 228M differs.

Example:
    python Training/model_stats.py --model emenet_v
    python Training/model_stats.py --model emenet_v_aux --seq_len 30 --json runs/emenet_v_aux_stats.json
"""
from emenet.cli import Script

script = Script("model-stats", "Training/model_stats.py", __doc__)
build_parser, main = script.build_parser, script.main

if __name__ == "__main__":
    raise SystemExit(main())
