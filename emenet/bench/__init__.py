"""The benchmark suite behind `emenet bench` and benchmarks/bench.py (see emenet.bench.suite)."""
