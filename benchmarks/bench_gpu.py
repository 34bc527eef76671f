"""EMENet's GPU benchmark column: inference paths (fp32, bf16, compile, CUDA graphs) and training
steps on a CUDA device, each paired with eager fp32 in the same run; writes
benchmarks/results/<machine>.md and .json. Method: emenet/bench/gpu.py's docstring.

    python benchmarks/bench_gpu.py                       # on a machine with CUDA
    python benchmarks/bench_gpu.py --quick --out_dir /tmp/gpu   # a smoke run
"""
import sys

from emenet.bench.gpu import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
