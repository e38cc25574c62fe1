"""A caller process for flask-multi-redis scenarios; prints one JSON Result.

python -m benchmarks.ours_caller sequential N
python -m benchmarks.ours_caller concurrent C N      (gevent: C greenlets, N calls in all)
python -m benchmarks.ours_caller gather WORKERS N
python -m benchmarks.ours_caller payload BYTES N     (bench.echo with BYTES of payload each way)
python -m benchmarks.ours_caller hold N              (gevent: N requests in flight at once; see benchmarks.curves)
"""

from __future__ import annotations

import sys

if sys.argv[1] in ("concurrent", "hold"):
    from gevent import monkey

    monkey.patch_all()

import json
import os

from benchmarks.bench_app import MAX_MESSAGE_SIZE, WORK, AddIn, Blob, config, echo, ping
from benchmarks.common import summarize
from benchmarks.peer_apps.driver import READY_TIMEOUT_S, WARMUP_CALLS, check, time_calls, time_calls_and_cpu
from flask_multi_redis import FlaskRedisSingle

SYSTEM = "flask-multi-redis"


def connections_of(client: FlaskRedisSingle, name: str) -> int:
    """Connections named ``name`` on the broker's server (a cluster: its shard's primary)."""
    return sum(1 for entry in client.broker.runtime().session.client_list() if entry.get("name") == name)


def main() -> None:
    mode = sys.argv[1]
    ext = FlaskRedisSingle(config())
    broker = ext.broker
    broker.configure(max_message_size=MAX_MESSAGE_SIZE)
    runtime = broker.start(timeout=10)
    own = f"flask-redis:{runtime.sender.id}"

    if mode == "hold":
        from benchmarks.curves import hold

        print(json.dumps(hold(broker, int(sys.argv[2]), int(os.environ["BENCH_HOLD_PID"])).as_json()))
        broker.stop()
        return

    channel = WORK[os.environ.get("BENCH_WORK", "none")]
    if mode == "payload":
        size = int(sys.argv[2])
        blob = Blob(data="x" * size)

        def call(i: int, timeout: float) -> None:
            if len(broker.request(echo, blob, timeout=timeout).data) != size:
                raise SystemExit(f"payload: call {i} came back with another size")

    else:

        def call(i: int, timeout: float) -> None:
            check(i, broker.request(channel, AddIn(a=i, b=1), timeout=timeout).result)

    # Warm up as every other system's caller does (benchmarks.peer_apps.driver): one call, then a few more.
    if mode == "gather":
        for _ in range(1 + WARMUP_CALLS):
            broker.broadcast(ping, None, gather=True, timeout=5)
    else:
        call(0, READY_TIMEOUT_S)
        concurrency = int(sys.argv[2]) if mode == "concurrent" else 0
        time_calls(call, max(WARMUP_CALLS, 2 * concurrency), concurrency)

    if mode in ("sequential", "payload"):
        timed = time_calls_and_cpu(call, int(sys.argv[-1]), 0)
        scenario = "sequential" if mode == "sequential" else f"curve-payload-{sys.argv[2]}"
        result = summarize(
            SYSTEM, scenario, timed["latencies_s"], timed["elapsed_s"], cpu_us_per_call=timed["cpu_us_per_call"]
        )
    elif mode == "concurrent":
        import gevent

        callers, n = int(sys.argv[2]), int(sys.argv[3])
        peak = [connections_of(ext, own)]

        def watch() -> None:
            while True:
                gevent.sleep(0.05)
                peak.append(connections_of(ext, own))

        watcher = gevent.spawn(watch)
        timed = time_calls_and_cpu(call, n, callers)
        watcher.kill()
        result = summarize(
            SYSTEM,
            f"concurrent-{callers}",
            timed["latencies_s"],
            timed["elapsed_s"],
            peak_connections=max(peak),
            cpu_us_per_call=timed["cpu_us_per_call"],
        )
    else:  # gather
        workers, n = int(sys.argv[2]), int(sys.argv[3])

        def gather(i: int, timeout: float) -> None:
            replies = broker.broadcast(ping, None, gather=True, timeout=timeout)
            if len(replies) != workers or not all(reply.ok for reply in replies):
                raise SystemExit(f"gather: {len(replies)} replies, expected {workers}")

        timed = time_calls_and_cpu(gather, n, 0)
        result = summarize(
            SYSTEM,
            f"broadcast-{workers}",
            timed["latencies_s"],
            timed["elapsed_s"],
            cpu_us_per_call=timed["cpu_us_per_call"],
        )
    result.extra["connections_at_rest"] = connections_of(ext, own)
    broker.stop()
    print(json.dumps(result.as_json()))


if __name__ == "__main__":
    main()
