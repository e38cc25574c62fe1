"""flask-multi-redis in every scenario: a flask-redis-worker serves ``bench.add``, callers run in child
processes (a gevent one for the concurrent scenario), and gunicorn runs 4 gevent web workers for the gather."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

from examples.local_redis import free_port
from flask_multi_redis import FlaskRedisSingle

from .bench_app import AddIn, AddOut, add, ping
from .common import CPU_PIDS, Result, child_env, python, redis_pid, run_json
from .floor import running

SYSTEM = "flask-multi-redis"
SIGNED = "flask-multi-redis signed"
APP = "benchmarks.bench_app:create_app()"
BIN = Path(python()).parent


def wait(what: str, condition: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout} s")
        time.sleep(0.05)


def preloaded_gevent_workers(count: int) -> list[str]:
    """gunicorn serving the benchmark's app from ``count`` gevent web workers forked after loading it
    (``--preload``), on a free port."""
    argv = [str(BIN / "gunicorn"), "-k", "gevent", "-w", str(count), "--preload", "--timeout", "120"]
    return [*argv, "-b", f"127.0.0.1:{free_port()}", "--log-level", "warning", APP]


#: The key of the signed scenario (PROTOCOL.md, "Signing"): both the worker and the caller sign and check.
SIGNING_KEY = "a benchmark key of 32 characters"


def caller(url: str, *args: object, **env: str) -> Result:
    argv = [python(), "-m", "benchmarks.ours_caller", *map(str, args)]
    return Result.from_json(run_json(argv, child_env(url, **env)))


def connections_by_pid(client: FlaskRedisSingle) -> Counter[int]:
    """Redis connections per process on the broker's server (a cluster: its shard's primary), from the names the
    broker gives its connections."""
    found: Counter[int] = Counter()
    for entry in client.broker.runtime().session.client_list():
        match = re.match(r"flask-redis:.+-(\d+)-[0-9a-f]+$", entry.get("name", ""))
        if match:
            found[int(match.group(1))] += 1
    return found


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))


WORKER = [str(BIN / "flask-redis-worker"), APP, "--router", "benchmarks.bench_app:router", "-l", "warning"]


def run(
    url: str,
    n_seq: int,
    n_conc: int,
    concurrencies: tuple[int, ...],
    n_gather: int,
    *,
    signed: bool = False,
    system: str = SYSTEM,
    codecs: bool = True,
) -> list[Result]:
    """Scenarios (a) sequential (unless ``n_seq`` is 0) and (b) concurrent; with ``n_gather`` also (c) broadcast
    with gather, (d) codec (unless not ``codecs``) and (e) memory and connections. ``signed``: every message
    signed (system ``flask-multi-redis signed``); ``system``: the name the results carry (a topology's)."""
    results = _run(url, n_seq, n_conc, concurrencies, n_gather, signed, codecs)
    for result in results:
        if system != SYSTEM and result.system == SYSTEM:
            result.system = system
    return results


def _run(
    url: str, n_seq: int, n_conc: int, concurrencies: tuple[int, ...], n_gather: int, signed: bool, codecs: bool
) -> list[Result]:
    signing = {"BENCH_SIGNING_KEY": SIGNING_KEY} if signed else {}
    env = child_env(url, **signing)
    probe = FlaskRedisSingle({"URL": url, "PREFIX": "bench"})
    results: list[Result] = []
    with running(WORKER, env, "flask-redis-worker") as worker:
        wait("the worker registering", lambda: probe.broker.responders(add))
        if n_seq:
            one_server = url.startswith(("redis://", "rediss://"))
            pids = {CPU_PIDS: f"server={worker.pid},redis={redis_pid(url)}"} if one_server else {}
            results.append(caller(url, "sequential", n_seq, **pids, **signing))
            if signed:
                results[-1].system = SIGNED
        for callers in concurrencies:
            results.append(caller(url, "concurrent", callers, n_conc))
        if concurrencies:
            results[-1].extra["worker_connections"] = connections_by_pid(probe)[worker.pid]
    if not n_gather:
        probe.broker.stop()
        return results
    port = free_port()
    gunicorn = [
        str(BIN / "gunicorn"),
        "-k",
        "gevent",
        "-w",
        "4",
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        APP,
    ]
    with running(gunicorn, env, "gunicorn") as web:
        wait("4 web workers listening", lambda: len(probe.broker.broadcast(ping, None, gather=True, timeout=1)) == 4)
        idle = {reply.value.pid for reply in probe.broker.broadcast(ping, None, gather=True, timeout=2) if reply.value}
        held = connections_by_pid(probe)
        results.append(
            Result(
                system=SYSTEM,
                scenario="memory",
                n=len(idle),
                extra={
                    "idle_web_worker_rss_kib": max(rss_kib(pid) for pid in idle),
                    "idle_web_worker_connections": max(held[pid] for pid in idle),
                    "gunicorn_master_connections": held[web.pid],
                },
            )
        )
        results.append(caller(url, "gather", 4, n_gather))
    probe.broker.stop()
    if codecs:
        results.append(codec("small", AddIn(a=1, b=2)))
        results.append(codec("10kb", _ten_kib_payload()))
    return results


def _ten_kib_payload() -> object:
    from .bench_app import Big

    return Big(items=[f"item-{index:05d}" for index in range(1000)])


def codec(size: str, message: object, seconds: float = 1.0) -> Result:
    """(d) encode + decode of one request through the broker's own path: validate and serialize the body,
    wrap it in an envelope, parse the envelope, validate the body back; calls per second."""
    from flask_multi_redis.broker.envelope import pack, unpack

    from .bench_app import big

    channel = add if isinstance(message, AddIn) else big
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for _ in range(200):
            data = pack(
                "request", "0123456789abcdefghijkl", channel.name, channel.dump_request(message), max_size=1 << 20
            )
            channel.load_request(unpack(data, 1 << 20).body)
        count += 200
    return Result(
        system=SYSTEM, scenario=f"codec-{size}", n=count, rps=round(count / elapsed, 1), extra={"bytes": len(data)}
    )


__all__ = ["AddOut", "run"]
