"""flask-multi-redis behind Redis Sentinel (a primary, a replica, three sentinels) and on a Redis Cluster (three
primaries with a replica each), in the same run as the single server: the sequential, 64-in-flight and gather
scenarios of :mod:`.ours`, and a failover under load (the broker's primary killed with SIGKILL): time to the
first success after the kill, calls failed by type, and hung calls (ended past their deadline and 1 s: must be 0).

The topologies are the test suite's own (tests/topologies.py), on free loopback ports.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from flask_multi_redis import FlaskRedisSingle
from tests.faults import Load
from tests.topologies import Cluster, SentinelSet

from . import ours
from .bench_app import AddIn, add
from .common import Result, child_env
from .floor import running

SENTINEL = "flask-multi-redis Sentinel"
CLUSTER = "flask-multi-redis Cluster"

#: The timeout of each call during the failover, in seconds.
FAILOVER_TIMEOUT = 2.0


def run(quick: bool) -> list[Result]:
    n_seq, n_conc, n_gather = (100, 200, 20) if quick else (2000, 6000, 500)
    results: list[Result] = []
    with tempfile.TemporaryDirectory() as folder:
        sentinels = SentinelSet.start(Path(folder) / "sentinel")
        try:
            results += ours.run(sentinels.url, n_seq, n_conc, (64,), n_gather, system=SENTINEL, codecs=False)
            results.append(failover(sentinels.url, SENTINEL, sentinels.primary.kill))
        finally:
            sentinels.stop()
        cluster = Cluster.start(Path(folder) / "cluster")
        try:
            results += ours.run(cluster.url, n_seq, n_conc, (64,), n_gather, system=CLUSTER, codecs=False)
            results.append(failover(cluster.url, CLUSTER, cluster.owner("{bench}").kill))
        finally:
            cluster.stop()
    return [result for result in results if result.scenario != "memory"]


def failover(url: str, system: str, kill: Callable[[], None]) -> Result:
    """Eight callers sending requests (timeout 2 s) to a flask-redis-worker while ``kill`` kills the primary."""
    caller = FlaskRedisSingle({"URL": url, "PREFIX": "bench", "SOCKET_TIMEOUT": 1})
    with running(ours.WORKER, child_env(url), "flask-redis-worker"):
        ours.wait("the worker registering", lambda: caller.broker.responders(add))

        def call(i: int) -> float:
            caller.broker.request(add, AddIn(a=i, b=1), timeout=FAILOVER_TIMEOUT)
            return FAILOVER_TIMEOUT

        load = Load(call, callers=8, pause=0.05)
        ours.wait("calls before the kill", lambda: load.ok_since(0) >= 200)
        kill()
        killed = time.monotonic()
        ours.wait("calls after the failover", lambda: load.ok_since(killed + 5) >= 200, timeout=60)
        outcomes = load.stop()
    caller.broker.stop()
    recovery = load.recovered_after(killed)
    failed = {kind: count for kind, count in sorted(outcomes.items()) if kind != "ok"}
    return Result(
        system=system,
        scenario="failover",
        n=sum(outcomes.values()),
        extra={"recovery_s": None if recovery is None else round(recovery, 2), "failed": failed, "hung": load.late},
    )


def table(results: list[Result]) -> str:
    """The topologies' figures, next to the single server's."""

    def find(system: str, scenario: str) -> Result | None:
        return next((r for r in results if r.system == system and r.scenario == scenario), None)

    rows = [
        "| system | sequential p50 | 64 in flight | gather to 4 p50 | failover: first success | failed calls | hung |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for system in (ours.SYSTEM, SENTINEL, CLUSTER):
        seq, conc, gather = find(system, "sequential"), find(system, "concurrent-64"), find(system, "broadcast-4")
        fail = find(system, "failover")
        if seq is None and fail is None:
            continue
        rate = f"{conc.rps:.0f}/s" if conc and conc.rps else "-"
        recovery, failed, hung = "-", "-", "-"
        if fail is not None:
            recovery = f"{fail.extra['recovery_s']} s"
            failed = ", ".join(f"{kind} {n}" for kind, n in fail.extra["failed"].items()) or "none"
            hung = str(fail.extra["hung"])
        rows.append(f"| {system} | {_us(seq)} | {rate} | {_us(gather)} | {recovery} | {failed} | {hung} |")
    return "\n".join(rows)


def _us(result: Result | None) -> str:
    return f"{result.p50_us:.0f} us" if result and result.p50_us else "-"
