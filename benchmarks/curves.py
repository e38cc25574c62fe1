"""How flask-multi-redis grows with the work: a gathered broadcast to 1, 4, 16 and 64 listening processes
(gunicorn gevent web workers, ``--preload``), request/reply against the payload's size (100 B to 1 MiB each
way, ``bench.echo``), throughput against callers in flight (1 to 256 greenlets in one caller process) and against
responder processes (1, 2, 4 flask-redis-workers, 64 in flight), the caller's memory with 10,000 requests in
flight, and the Redis connections each kind of process holds.

Every point is one run of its own (the scenarios ``curve-*``); the sequential targets' rounds are elsewhere.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Broker

from .bench_app import AddIn, add, ping
from .common import CPU_PIDS, Result, child_env, redis_pid
from .floor import running
from .ours import SYSTEM, WORKER, caller, connections_by_pid, preloaded_gevent_workers, rss_kib, wait

GATHER_TO = (1, 4, 16, 64)
PAYLOADS = (100, 1024, 10 * 1024, 100 * 1024, 1024 * 1024)
IN_FLIGHT = (1, 4, 16, 64, 256)
RESPONDERS = (1, 2, 4)
HELD = 10_000

#: The target of the issue: a gather to 16 processes under this p50.
GATHER_16_TARGET_US = 2000


def _calls(size: int) -> int:
    """As many calls as keep each payload point to a few seconds."""
    return 1000 if size <= 10 * 1024 else 300 if size <= 100 * 1024 else 60


def run(url: str, quick: bool) -> list[Result]:
    """Every curve's points, one Result each."""
    gather_to, payloads, in_flight, responders = (
        ((1, 4), (100, 10 * 1024), (1, 16), (1, 2)) if quick else (GATHER_TO, PAYLOADS, IN_FLIGHT, RESPONDERS)
    )
    probe = FlaskRedisSingle({"URL": url, "PREFIX": "bench"})
    server = f"redis={redis_pid(url)}"  # whose CPU every throughput point measures too
    try:
        results = _gather(url, probe, server, gather_to, 20 if quick else 0)
        with running(WORKER, child_env(url), "flask-redis-worker") as worker:
            wait("the worker registering", lambda: probe.broker.responders(add))
            for size in payloads:
                results.append(_named(caller(url, "payload", size, 20 if quick else _calls(size)), "payload", size))
            watched = {CPU_PIDS: f"worker0={worker.pid},{server}"}
            for callers in in_flight:
                found = caller(url, "concurrent", callers, 200 if quick else 4000, **watched)
                found.extra["worker_connections"] = connections_by_pid(probe)[worker.pid]
                results.append(_named(found, "in-flight", callers))
            held = caller(url, "hold", 500 if quick else HELD, BENCH_HOLD_PID=str(worker.pid))
            results.append(held)
        for count in responders:
            with contextlib.ExitStack() as stack:
                pids = [server]
                for index in range(count):
                    started = stack.enter_context(running(WORKER, child_env(url), f"flask-redis-worker {index}"))
                    pids.append(f"worker{index}={started.pid}")
                wait(f"{count} workers registering", lambda: len(probe.broker.responders(add)) == count, 60)  # noqa: B023
                found = caller(url, "concurrent", 64, 200 if quick else 6000, **{CPU_PIDS: ",".join(pids)})
                results.append(_named(found, "responders", count))
    finally:
        probe.broker.stop()
    return results


def _named(result: Result, curve: str, x: int) -> Result:
    result.scenario = f"curve-{curve}-{x}"
    result.latencies_us = []  # the curves keep their summaries only
    return result


def _gather(url: str, probe: FlaskRedisSingle, server: str, gather_to: tuple[int, ...], n: int) -> list[Result]:
    results = []
    for count in gather_to:
        with running(preloaded_gevent_workers(count), child_env(url), f"gunicorn -w {count}"):
            wait(
                f"{count} web workers listening",
                lambda: len(probe.broker.broadcast(ping, None, gather=True, timeout=1)) == count,  # noqa: B023
                120,
            )
            replies = probe.broker.broadcast(ping, None, gather=True, timeout=2)
            pids = [reply.value.pid for reply in replies if reply.value]
            held = connections_by_pid(probe)
            watched = ",".join([server, *(f"web{index}={pid}" for index, pid in enumerate(pids))])
            calls = n or (1000 if count <= 4 else 500 if count <= 16 else 200)
            found = caller(url, "gather", count, calls, **{CPU_PIDS: watched})
            cpu = found.extra.pop("cpu_us_per_call", {})
            found.extra |= {
                "cpus": os.cpu_count() or 1,
                "cpu_us_per_gather": {
                    "caller": cpu.get("caller"),
                    "redis": cpu.get("redis"),
                    "each web worker": round(sum(cpu.get(f"web{i}", 0) for i in range(len(pids))) / len(pids), 1),
                },
                "web_worker_connections_max": max(held[pid] for pid in pids),
                "web_worker_connections_min": min(held[pid] for pid in pids),
                "web_worker_rss_kib_max": max(rss_kib(pid) for pid in pids),
            }
            results.append(_named(found, "gather", count))
    return results


def hold(broker: Broker, n: int, responder_pid: int) -> Result:
    """In a gevent caller: ``n`` requests in flight at once while the responder is stopped (SIGSTOP), the
    process's RSS before and with them all waiting, then the responder goes on (SIGCONT) and every call ends
    (answered, or refused as overloaded: the responder queues at most ``max_pending``)."""
    import gevent

    broker.request(add, AddIn(a=1, b=1), timeout=10)  # connections made, code paths warm
    gc.collect()
    at_rest = rss_kib(os.getpid())
    outcomes: Counter[str] = Counter()

    def one(i: int) -> None:
        try:
            broker.request(add, AddIn(a=i, b=1), timeout=60)
            outcomes["answered"] += 1
        except Exception as error:  # counted by kind: the figure is memory, every outcome is reported
            outcomes[type(error).__name__] += 1

    os.kill(responder_pid, signal.SIGSTOP)
    try:
        started = time.perf_counter()
        calls = [gevent.spawn(one, i) for i in range(n)]
        deadline = started + 30
        while broker.health().waiting_calls < n and time.perf_counter() < deadline and not outcomes:
            gevent.sleep(0.01)
        waiting, sent_s = broker.health().waiting_calls, time.perf_counter() - started
        in_flight = rss_kib(os.getpid())
    finally:
        os.kill(responder_pid, signal.SIGCONT)
    gevent.joinall(calls)
    return Result(
        system=SYSTEM,
        scenario="curve-caller-memory",
        n=n,
        extra={
            "waiting_at_peak": waiting,
            "rss_at_rest_kib": at_rest,
            "rss_in_flight_kib": in_flight,
            "kib_per_request": round((in_flight - at_rest) / max(1, waiting), 2),
            "sent_s": round(sent_s, 2),
            "all_ended_s": round(time.perf_counter() - started, 2),
            "outcomes": dict(outcomes),
        },
    )


def points(results: list[Result], curve: str) -> list[tuple[int, Result]]:
    """The points of one curve, by their x."""
    prefix = f"curve-{curve}-"
    found = [(int(r.scenario.removeprefix(prefix)), r) for r in results if r.scenario.startswith(prefix)]
    return sorted(found, key=lambda point: point[0])


def _size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size // (1024 * 1024)} MiB"
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


def _slope(first: tuple[int, Result], last: tuple[int, Result], per: float) -> float:
    return ((last[1].p50_us or 0) - (first[1].p50_us or 0)) / max(1e-9, (last[0] - first[0]) / per)


def _busy(result: Result) -> str:
    """The cores each kind of process kept busy during a throughput point (CPU per call times calls per second):
    the caller, the workers together, Redis."""
    cpu = result.extra.get("cpu_us_per_call", {})
    workers = sum(value for name, value in cpu.items() if name.startswith("worker"))
    shares = (cpu.get("caller"), workers or None, cpu.get("redis"))
    return ", ".join("-" if share is None else f"{share * (result.rps or 0) / 1e6:.2f}" for share in shares)


def section(results: list[Result]) -> str:
    """The report's tables of every curve, and how each grows; empty if the curves were not measured."""
    gather, payload = points(results, "gather"), points(results, "payload")
    in_flight, responders = points(results, "in-flight"), points(results, "responders")
    if not (gather or payload or in_flight or responders):
        return ""
    lines: list[str] = []
    if gather:
        lines += [
            "| listening processes | p50 (us) | p99 (us) | CPU per gather: each worker, Redis, caller (us) "
            "| CPU in all / CPUs (us) | connections per idle worker | RSS each (MiB) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for count, r in gather:
            cpu = r.extra.get("cpu_us_per_gather", {})
            each, rest = cpu.get("each web worker") or 0, (cpu.get("redis") or 0) + (cpu.get("caller") or 0)
            lines.append(
                f"| {count} | {r.p50_us:.0f} | {r.p99_us:.0f} | {each:.0f}, {cpu.get('redis') or 0:.0f}, "
                f"{cpu.get('caller') or 0:.0f} | {(count * each + rest) / r.extra.get('cpus', 1):.0f} | "
                f"{r.extra['web_worker_connections_min']}-{r.extra['web_worker_connections_max']} | "
                f"{r.extra['web_worker_rss_kib_max'] / 1024:.0f} |"
            )
        if len(gather) > 1:
            lines += ["", f"Each further process adds {_slope(gather[0], gather[-1], 1):.0f} us to the gather's p50."]
        lines.append("")
    if payload:
        lines += ["| payload each way | p50 (us) | p99 (us) | MB/s each way |", "| ---: | ---: | ---: | ---: |"]
        for size, r in payload:
            lines.append(f"| {_size(size)} | {r.p50_us:.0f} | {r.p99_us:.0f} | {size / (r.p50_us or 1):.1f} |")
        if len(payload) > 1:
            per_kib = _slope(payload[0], payload[-1], 1024)
            lines += ["", f"Each further KiB of payload adds {per_kib:.1f} us to the p50."]
        lines.append("")
    if in_flight:
        lines += [
            "| callers in flight | req/s | p50 (us) | p99 (us) | cores busy: caller, worker, Redis "
            "| caller connections (peak) | worker's |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for callers, r in in_flight:
            lines.append(
                f"| {callers} | {r.rps:.0f} | {r.p50_us:.0f} | {r.p99_us:.0f} | {_busy(r)} "
                f"| {r.extra.get('peak_connections', '-')} | {r.extra.get('worker_connections', '-')} |"
            )
        best = max(in_flight, key=lambda point: point[1].rps or 0)
        lines += ["", f"Throughput peaks at {best[1].rps:.0f} req/s with {best[0]} in flight.", ""]
    if responders:
        lines += ["| responder processes (64 in flight) | req/s | p50 (us) | cores busy: caller, workers, Redis |"]
        lines += ["| ---: | ---: | ---: | ---: |"]
        lines += [f"| {count} | {r.rps:.0f} | {r.p50_us:.0f} | {_busy(r)} |" for count, r in responders]
        lines.append("")
    memory = next((r for r in results if r.scenario == "curve-caller-memory"), None)
    if memory:
        e = memory.extra
        lines.append(
            f"Caller memory: {e['waiting_at_peak']} requests waiting at once took the caller from "
            f"{e['rss_at_rest_kib'] / 1024:.0f} MiB to {e['rss_in_flight_kib'] / 1024:.0f} MiB RSS, "
            f"{e['kib_per_request']:.1f} KiB per request in flight (its greenlet included); sent in {e['sent_s']} s, "
            f"all ended {e['all_ended_s']} s after the first was sent: {e['outcomes']}."
        )
    return "\n".join(lines)


def verdicts(results: list[Result]) -> list[tuple[str, bool | None, str]]:
    """The curves' targets: a gather to 16 under 2 ms; at most 2 connections per idle web worker, however many."""
    out: list[tuple[str, bool | None, str]] = []
    gather = dict(points(results, "gather"))
    if 16 in gather and gather[16].p50_us:
        p50 = gather[16].p50_us
        out.append(("gather to 16 processes: p50 under 2 ms", p50 < GATHER_16_TARGET_US, f"{p50:.0f} us"))
    if gather:
        held = max(r.extra["web_worker_connections_max"] for r in gather.values())
        out.append(("at most 2 connections per idle web worker, 1 to 64 of them", held <= 2, f"{held} connections"))
    return out


def plot(results: list[Result], path: Path) -> bool:
    """The four curves in one picture; False without matplotlib or without curves."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    curves: dict[str, Any] = {name: points(results, name) for name in ("gather", "payload", "in-flight", "responders")}
    if not any(curves.values()):
        return False
    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    drawn = (
        ("gather", "gathered broadcast", "listening processes", "us", ("p50_us", "p99_us")),
        ("payload", "request/reply by payload", "payload each way (bytes)", "us", ("p50_us", "p99_us")),
        ("in-flight", "throughput by callers in flight", "callers in flight", "req/s", ("rps",)),
        ("responders", "throughput by responders (64 in flight)", "responder processes", "req/s", ("rps",)),
    )
    for ax, (name, title, xlabel, ylabel, fields) in zip(axes.flat, drawn, strict=True):
        xs = [x for x, _ in curves[name]]
        for field in fields:
            ax.plot(xs, [getattr(r, field) for _, r in curves[name]], marker="o", label=field.removesuffix("_us"))
        if name in ("gather", "payload", "in-flight") and xs:
            ax.set_xscale("log")
        if name == "payload":
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)  # throughput and the gather's time from zero: no slope made steep by the axis
        ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
        ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
