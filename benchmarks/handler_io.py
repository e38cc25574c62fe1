"""Handlers that do work, served as users serve them: sequential request/reply p50 for a handler that does
nothing, one Redis command through ``getRedis()`` (``incr``), or a 1 ms wait (``nap``), served by
flask-redis-worker with threads and with ``-P gevent``, by one gunicorn worker of each kind (gevent, gthread,
sync) and, as the anchors, by the hand-written redis-py responder of the floor doing the same work and by
the transport floor's (raw sockets and hiredis, one write for PUBLISH and BLPOP, as ours) doing it through
redis-py. *INCR adds* is what the one Redis command adds to each server's p50.

The servers take turns in each round (A B C ... A B C ...), and the median of the rounds' p50 is reported with
its spread, because this machine drifts by 10-20 % between runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from examples.local_redis import free_port
from flask_multi_redis import FlaskRedisSingle

from . import floor
from .bench_app import WORK
from .common import Result, child_env, combine, python
from .floor import running, wait_for_subscriber
from .ours import APP, BIN, WORKER, caller, wait

#: The anchors, by the module of their hand-written floor: a responder doing the same work, after the floor's
#: caller (PUBLISH, then BLPOP: its work runs while the BLPOP goes out) and after the transport floor's (both
#: in one write, as ours).
FLOORS = {"redis-py": "benchmarks.floor", "hiredis floor": "benchmarks.raw_floor"}
OURS = ("worker threads", "worker -P gevent", "gunicorn gevent", "gunicorn gthread", "gunicorn sync")
SERVERS = (*OURS, *FLOORS)

#: Sequential p50 of the one-INCR handler at most this many times the redis-py responder doing the same INCR.
TARGET = 1.1


def _command(server: str) -> list[str]:
    if server == "worker threads":
        return WORKER
    if server == "worker -P gevent":
        return [*WORKER, "-P", "gevent"]
    kind = server.removeprefix("gunicorn ")
    threads = ["--threads", "4"] if kind == "gthread" else []
    return [str(BIN / "gunicorn"), "-k", kind, *threads, "-w", "1", "-b", f"127.0.0.1:{free_port()}", APP]


@contextmanager
def _serving(url: str, server: str, work: str) -> Iterator[dict[str, str]]:
    """The server running; the environment its caller needs."""
    if server in FLOORS:
        channel = f"bench:floor:{uuid.uuid4().hex[:12]}"
        env = child_env(url, BENCH_CHANNEL=channel, BENCH_WORK=work)
        with running([python(), "-m", FLOORS[server], "responder"], env, f"{server} responder") as responder:
            wait_for_subscriber(url, channel, responder)
            yield env
        return
    env = child_env(url, BENCH_SERVE_HANDLERS="1", BENCH_WORK=work)
    probe = FlaskRedisSingle({"URL": url, "PREFIX": "bench"})
    try:
        with running(_command(server), env, server):
            wait(f"{server} registering", lambda: probe.broker.responders(WORK[work]))
            yield env
    finally:
        probe.broker.stop()


def _time(url: str, server: str, work: str, n: int) -> Result:
    with _serving(url, server, work) as env:
        if server in FLOORS:
            return floor.time_caller(server, [FLOORS[server], "caller"], env, n)
        return caller(url, "sequential", n, BENCH_WORK=work)


def run(url: str, quick: bool) -> list[Result]:
    """Every server with every kind of work, in alternating rounds; one Result per pair (scenario
    ``handler-<work>``, system ``<server>``), its p50 the median of the rounds'."""
    n, rounds, works = (50, 1, ("incr",)) if quick else (1500, 3, tuple(WORK))
    measured: dict[tuple[str, str], list[Result]] = {}
    for _ in range(rounds):
        for work in works:
            for server in SERVERS:
                measured.setdefault((server, work), []).append(_time(url, server, work, n))
    for (server, work), found in measured.items():
        for result in found:
            result.system, result.scenario = server, f"handler-{work}"
    return [combine(found) for found in measured.values()]


def _get(results: list[Result], server: str, work: str) -> Result | None:
    return next((r for r in results if r.system == server and r.scenario == f"handler-{work}"), None)


def _ratio(mine: Result | None, anchor: Result | None) -> str:
    return f"{mine.p50_us / anchor.p50_us:.2f}x" if mine and anchor and mine.p50_us and anchor.p50_us else "-"


def table(results: list[Result]) -> str:
    """Sequential p50 (us) per server and work, what the INCR adds, and the one-INCR handler's ratio to each
    anchor doing the same INCR."""
    works = [work for work in WORK if any(r.scenario == f"handler-{work}" for r in results)]
    if not works:
        return ""
    lines = [
        "| served by | "
        + " | ".join(f"{work} p50 (us)" for work in works)
        + " | INCR adds (us) | incr / redis-py incr | incr / hiredis floor incr |",
        "| --- | " + " | ".join("---:" for _ in works) + " | ---: | ---: | ---: |",
    ]
    anchors = [_get(results, anchor, "incr") for anchor in FLOORS]
    for server in SERVERS:
        cells = []
        for work in works:
            found = _get(results, server, work)
            spread = found.extra.get("rounds_p50_us", []) if found else []
            extent = f" ({min(spread):.0f}-{max(spread):.0f})" if len(spread) > 1 else ""
            cells.append(f"{found.p50_us:.0f}{extent}" if found and found.p50_us else "-")
        mine, idle = _get(results, server, "incr"), _get(results, server, "none")
        adds = f"{mine.p50_us - idle.p50_us:.0f}" if mine and idle and mine.p50_us and idle.p50_us else "-"
        versus = " | ".join(_ratio(mine, anchor) for anchor in anchors)
        lines.append(f"| {server} | " + " | ".join(cells) + f" | {adds} | {versus} |")
    return "\n".join(lines)


def verdicts(results: list[Result]) -> list[tuple[str, bool | None, str]]:
    """The target of the issue: the one-INCR handler within 1.1x the redis-py responder, under every server."""
    anchor = _get(results, "redis-py", "incr")
    out: list[tuple[str, bool | None, str]] = []
    for server in OURS:
        mine = _get(results, server, "incr")
        if mine is None or anchor is None or not mine.p50_us or not anchor.p50_us:
            continue
        ratio = mine.p50_us / anchor.p50_us
        out.append(
            (f"one-INCR handler, {server}: at most {TARGET}x the redis-py responder", ratio <= TARGET, f"{ratio:.2f}x")
        )
    return out
