"""A caller process for flask-multi-redis scenarios; prints one JSON Result.

python -m benchmarks.ours_caller sequential N
python -m benchmarks.ours_caller concurrent C N      (gevent: C greenlets, N calls in all)
python -m benchmarks.ours_caller gather WORKERS N
"""

from __future__ import annotations

import sys

if sys.argv[1] == "concurrent":
    from gevent import monkey

    monkey.patch_all()

import json
import os
import time

from benchmarks.bench_app import AddIn, add, ping
from benchmarks.common import summarize
from flask_multi_redis import FlaskRedisSingle

SYSTEM = "flask-multi-redis"


def connections_of(client: FlaskRedisSingle, name: str) -> int:
    return sum(1 for entry in client.getRedis().client_list() if entry.get("name") == name)


def main() -> None:
    mode = sys.argv[1]
    ext = FlaskRedisSingle({"URL": os.environ["REDIS_URL"], "PREFIX": "bench"})
    broker = ext.broker
    runtime = broker.start(timeout=10)
    own = f"flask-redis:{runtime.sender.id}"
    for i in range(200):  # warm up: connections, registry cache, code paths
        if mode == "gather":
            broker.broadcast(ping, None, gather=True, timeout=5)
        else:
            broker.request(add, AddIn(a=i, b=1), timeout=10)
    latencies: list[float] = []
    if mode == "sequential":
        n = int(sys.argv[2])
        started = time.perf_counter()
        for i in range(n):
            t0 = time.perf_counter()
            if broker.request(add, AddIn(a=i, b=1), timeout=10).result != i + 1:
                raise SystemExit("wrong result")
            latencies.append(time.perf_counter() - t0)
        result = summarize(SYSTEM, "sequential", latencies, time.perf_counter() - started)
    elif mode == "concurrent":
        import gevent
        from gevent.pool import Pool

        callers, n = int(sys.argv[2]), int(sys.argv[3])
        per_caller = n // callers
        peak = [connections_of(ext, own)]

        def call_many() -> None:
            for i in range(per_caller):
                t0 = time.perf_counter()
                broker.request(add, AddIn(a=i, b=1), timeout=30)
                latencies.append(time.perf_counter() - t0)

        def watch() -> None:
            while True:
                gevent.sleep(0.05)
                peak.append(connections_of(ext, own))

        watcher = gevent.spawn(watch)
        started = time.perf_counter()
        Pool(callers).map(lambda _: call_many(), range(callers))
        elapsed = time.perf_counter() - started
        watcher.kill()
        result = summarize(SYSTEM, f"concurrent-{callers}", latencies, elapsed, peak_connections=max(peak))
    else:  # gather
        workers, n = int(sys.argv[2]), int(sys.argv[3])
        started = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            replies = broker.broadcast(ping, None, gather=True, timeout=5)
            latencies.append(time.perf_counter() - t0)
            if len(replies) != workers or not all(reply.ok for reply in replies):
                raise SystemExit(f"gather: {len(replies)} replies, expected {workers}")
        result = summarize(SYSTEM, f"broadcast-{workers}", latencies, time.perf_counter() - started)
    result.extra["connections_at_rest"] = connections_of(ext, own)
    broker.stop()
    print(json.dumps(result.as_json()))


if __name__ == "__main__":
    main()
