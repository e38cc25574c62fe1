"""RQ caller: enqueue ``add(i, 1)``, then block on ``job.latest_result(timeout=...)`` (XREAD of its result stream)."""

from __future__ import annotations

import math
import os

from redis import Redis
from rq import Queue

from benchmarks.peer_apps import driver
from benchmarks.peer_apps.rq_jobs import QUEUE, add

queue = Queue(QUEUE, connection=Redis.from_url(os.environ["REDIS_URL"]))


def call(i: int, timeout: float) -> None:
    job = queue.enqueue(add, i, 1)
    result = job.latest_result(timeout=math.ceil(timeout))  # whole seconds
    if result is None:
        raise TimeoutError(f"no result for add({i}, 1) within {timeout} s")
    if result.type != result.Type.SUCCESSFUL:
        raise RuntimeError(f"add({i}, 1) failed: {result.exc_string}")
    driver.check(i, result.return_value)


if __name__ == "__main__":
    driver.main(call)
