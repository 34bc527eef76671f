"""Run one benchmark workload in this process: a JSON spec on stdin, the result as one marked JSON line.

The suite starts one such process per measurement, so each one's peak memory, allocator
settings, thread state and compile caches are its own.

    echo '{"kind": "video_stages", "video": "utterance_1.mp4"}' | python -m emenet.bench.child
"""
from __future__ import annotations

import json
import logging
import sys

RESULT_MARKER = "EMENET_BENCH_RESULT "


def run_spec(spec: dict) -> dict:
    from emenet.bench.workloads import WORKLOADS
    return WORKLOADS[spec["kind"]](spec)


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    spec = json.loads(sys.stdin.read())
    result = run_spec(spec)
    sys.stdout.write(RESULT_MARKER + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
