"""Celery app of the benchmark: task ``add`` with a Redis broker and a Redis result backend, both ``$REDIS_URL``.

Worker: ``python -m celery -A benchmarks.peer_apps.celery_tasks worker -P solo`` (or ``-P gevent -c C``).
"""

from __future__ import annotations

import os

from celery import Celery

URL = os.environ["REDIS_URL"]

app = Celery("bench", broker=URL, backend=URL)
app.conf.update(
    worker_prefetch_multiplier=1,
    task_acks_late=False,
    result_expires=300,
    broker_connection_retry_on_startup=True,
    # one result backend (one connection pool) for the process, not one per thread: under gevent every greenlet,
    # so every task of a -P gevent worker, would otherwise build its own backend and open a new connection
    result_backend_thread_safe=True,
    broker_pool_limit=128,  # a producer per caller greenlet (default 10 would queue 64 greenlets on 10 producers)
)


@app.task(name="bench.add")
def add(a: int, b: int) -> int:
    return a + b
