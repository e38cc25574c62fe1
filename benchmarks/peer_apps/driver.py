"""The caller side of every timed child: wait for the worker, warm up, time ``n`` calls, print one JSON line.

A caller module defines ``call(i, timeout)`` (or an async one), which must make the round trip ``add(i, 1)`` and
check the answer with :func:`check`, and hands it to :func:`main` (or :func:`amain`). Arguments: ``--n N`` and
``--concurrency C``: 0 is a plain loop, one call after another; ``C >= 1`` shares the ``n`` calls among ``C`` gevent
greenlets (the process must run under ``benchmarks.peer_apps.under_gevent``) or ``C`` asyncio tasks.
The JSON line: ``{"latencies_s": [...], "elapsed_s": wall time of all n calls, "cpu_us_per_call": {...}}``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from benchmarks.common import CPU_PIDS, cpu_time

Call = Callable[[int, float], None]
AsyncCall = Callable[[int, float], Awaitable[None]]

READY_TIMEOUT_S = 60.0  # the first call waits this long for the worker to come up and answer
CALL_TIMEOUT_S = 10.0
WARMUP_CALLS = 20


def check(i: int, value: object) -> None:
    """Fail unless ``value`` is the answer to ``add(i, 1)``."""
    if value != i + 1:
        raise RuntimeError(f"add({i}, 1) answered {value!r}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, required=True, help="timed calls")
    parser.add_argument("--concurrency", type=int, default=0, help="0: one after another; C: C greenlets/tasks")
    return parser.parse_args(argv)


def time_calls(call: Call, n: int, concurrency: int) -> tuple[list[float], float]:
    """Latency of each of ``n`` calls and their wall time, one after another or shared by ``concurrency`` greenlets."""
    latencies: list[float] = []
    if concurrency == 0:
        start = time.perf_counter()
        for i in range(n):
            began = time.perf_counter()
            call(i, CALL_TIMEOUT_S)
            latencies.append(time.perf_counter() - began)
        return latencies, time.perf_counter() - start

    import gevent
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        raise SystemExit("a concurrent caller must run under python -m benchmarks.peer_apps.under_gevent")
    counter = itertools.count()

    def loop() -> None:
        while (i := next(counter)) < n:
            began = time.perf_counter()
            call(i, CALL_TIMEOUT_S)
            latencies.append(time.perf_counter() - began)

    start = time.perf_counter()
    gevent.joinall([gevent.spawn(loop) for _ in range(concurrency)], raise_error=True)
    return latencies, time.perf_counter() - start


async def atime_calls(call: AsyncCall, n: int, concurrency: int) -> tuple[list[float], float]:
    """Latency of each of ``n`` calls and their wall time, one after another or shared by ``concurrency`` tasks."""
    latencies: list[float] = []
    counter = itertools.count()

    async def loop() -> None:
        while (i := next(counter)) < n:
            began = time.perf_counter()
            await call(i, CALL_TIMEOUT_S)
            latencies.append(time.perf_counter() - began)

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(max(1, concurrency))))
    return latencies, time.perf_counter() - start


def _report(latencies: list[float], elapsed: float) -> None:
    print(json.dumps({"latencies_s": latencies, "elapsed_s": elapsed}))


def time_calls_and_cpu(call: Call, n: int, concurrency: int) -> dict[str, Any]:
    """:func:`time_calls`, and the CPU each call took in this process and, when the environment names them
    (:data:`~benchmarks.common.CPU_PIDS`), in the server and in Redis: microseconds per call, all threads.
    The JSON document a caller child prints."""
    pids = {"caller": os.getpid()}
    for part in filter(None, os.environ.get(CPU_PIDS, "").split(",")):
        name, _, pid = part.partition("=")
        pids[name] = int(pid)
    before = {name: cpu_time(pid) for name, pid in pids.items()}
    latencies, elapsed = time_calls(call, n, concurrency)
    after = {name: cpu_time(pid) for name, pid in pids.items()}
    cpu = {
        name: round((after[name] - start) / n * 1e6, 1)  # type: ignore[operator]
        for name, start in before.items()
        if start is not None and after[name] is not None
    }
    return {"latencies_s": latencies, "elapsed_s": elapsed, "cpu_us_per_call": cpu}


def main(call: Call, argv: Sequence[str] | None = None) -> None:
    """Wait for the worker (first call), warm up (connections for every greenlet), then time and report."""
    args = parse_args(argv)
    call(0, READY_TIMEOUT_S)
    time_calls(call, max(WARMUP_CALLS, 2 * args.concurrency), args.concurrency)
    print(json.dumps(time_calls_and_cpu(call, args.n, args.concurrency)))


async def amain(call: AsyncCall, argv: Sequence[str] | None = None) -> None:
    """:func:`main` for an asyncio caller."""
    args = parse_args(argv)
    await call(0, READY_TIMEOUT_S)
    await atime_calls(call, max(WARMUP_CALLS, 2 * args.concurrency), args.concurrency)
    _report(*await atime_calls(call, args.n, args.concurrency))
