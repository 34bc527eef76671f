"""The EMENet benchmark suite (same as `emenet bench`): inference, video pipeline and training speed
against a plain eager baseline measured in the same run; writes benchmarks/results/<machine>.md and .json.

    python benchmarks/bench.py                 # the full suite (tens of minutes on 2 CPU cores)
    python benchmarks/bench.py --quick --out_dir /tmp/bench   # a smoke run
"""
import sys

from emenet.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
