"""RQ job of the benchmark.

Worker: ``python -m rq.cli worker bench --worker-class rq.worker.SimpleWorker --url $REDIS_URL``.
"""

from __future__ import annotations

QUEUE = "bench"


def add(a: int, b: int) -> int:
    return a + b
