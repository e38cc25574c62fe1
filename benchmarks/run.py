"""Run the benchmarks side by side and write the report: ``python -m benchmarks.run`` (``make bench``).

It starts a redis-server of its own, measures flask-multi-redis, the hand-written floor and every installed
peer (Celery, RQ, FastStream) in the same run, and writes results.json, a table and a plot to ``--out``, and
BENCHMARKS.md unless ``--quick`` (a smoke run of a few seconds, used by the test suite).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from . import collections_bench, curves, floor, handler_io, ours, raw_floor, topologies
from .common import ROOT, Result, bench_redis, combine, machine

TARGETS_NOTE = ROOT / "benchmarks" / "NOTES.md"


def measure(quick: bool, systems: set[str]) -> list[Result]:
    if quick:
        n_seq, rounds, n_conc, concurrencies, n_gather = 100, 1, 200, (1, 16), 20
    else:
        n_seq, rounds, n_conc, concurrencies, n_gather = 4000, 5, 6000, (1, 16, 64), 1000
    results: list[Result] = []
    with bench_redis() as url:
        # The sequential scenario, the most sensitive to the machine's drift, runs every system in each of the
        # rounds in turn, with as many calls, so that drift weighs on all alike.
        sequential: dict[str, list[Result]] = {}
        for _ in range(rounds):
            measured = []
            if "ours" in systems:
                measured += ours.run(url, n_seq // rounds, 0, (), 0)[:1]
                measured += ours.run(url, n_seq // rounds, 0, (), 0, signed=True)[:1]
            if "floor" in systems:
                measured += floor.run(url, n_seq // rounds, 0, ())
                measured += raw_floor.run(url, n_seq // rounds)
            if "peers" in systems:
                from . import peers

                measured += peers.run(url, n_seq // rounds, 0, ())
            for result in measured:
                sequential.setdefault(result.system, []).append(result)
        results += [combine(rounds_of) for rounds_of in sequential.values()]
        if "handlers" in systems:
            results += handler_io.run(url, quick)
        if "ours" in systems:
            results += ours.run(url, 0, n_conc, concurrencies, n_gather)
        if "floor" in systems:
            results += floor.run(url, 0, n_conc, concurrencies)
        if "peers" in systems:
            from . import peers

            results += peers.run(url, 0, n_conc // 3, concurrencies)
        if "curves" in systems:
            results += curves.run(url, quick)
    if "collections" in systems:
        with bench_redis() as url:
            results += collections_bench.run(url, quick)
    if "topologies" in systems:
        results += topologies.run(quick)
    return results


def cpu_table(results: list[Result]) -> str:
    """CPU per sequential call in each process (all threads), ours against the floor; empty if not measured."""
    rows = [r for r in results if r.scenario == "sequential" and "server" in r.extra.get("cpu_us_per_call", {})]
    if not rows:
        return ""
    names = ["caller", "server", "redis"]
    lines = [
        "| system | " + " | ".join(f"{name} (us)" for name in names) + " | all (us) |",
        "| --- | " + " | ".join("---:" for _ in names) + " | ---: |",
    ]
    for row in rows:
        cpu = row.extra["cpu_us_per_call"]
        cells = " | ".join(f"{cpu[name]:.0f}" if name in cpu else "-" for name in names)
        lines.append(f"| {row.system} | {cells} | {sum(cpu.get(name, 0) for name in names):.0f} |")
    return "\n".join(lines)


def _round_ratios(mine: Result, other: Result) -> str:
    """The range of the per-round ratios of two systems' p50 (their rounds ran side by side), if there were rounds."""
    pairs = zip(mine.extra.get("rounds_p50_us", []), other.extra.get("rounds_p50_us", []), strict=False)
    ratios = sorted(a / b for a, b in pairs if a and b)
    return f" (rounds: {ratios[0]:.2f}x to {ratios[-1]:.2f}x)" if len(ratios) > 1 else ""


def signing(results: list[Result]) -> str:
    """What signing every message costs the sequential round trip (PROTOCOL.md, "Signing")."""
    signed, plain = find(results, ours.SIGNED, "sequential"), find(results, ours.SYSTEM, "sequential")
    if signed is None or plain is None or not signed.p50_us or not plain.p50_us:
        return ""
    return (
        f"Signing every message (`SIGNING_KEY`) costs the sequential round trip {signed.p50_us / plain.p50_us:.2f}x "
        f"its p50 without{_round_ratios(signed, plain)}."
    )


def find(results: list[Result], system: str, scenario: str) -> Result | None:
    return next((r for r in results if r.system == system and r.scenario == scenario), None)


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def table(results: list[Result]) -> str:
    """Latency and throughput per system and scenario, each with its ratio to the floor of the same scenario."""
    lines = [
        "| scenario | system | n | p50 (us) | p99 (us) | req/s | p50 / floor | req/s / floor |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for result in results:
        if result.p50_us is None or result.scenario.startswith(("handler-", "curve-")):
            continue
        base = find(results, "floor", result.scenario)
        lines.append(
            f"| {result.scenario} | {result.system} | {result.n} | {result.p50_us:.0f} | {result.p99_us:.0f} | "
            f"{result.rps:.0f} | {ratio(result.p50_us, base.p50_us if base else None)} | "
            f"{ratio(result.rps, base.rps if base else None)} |"
        )
    return "\n".join(lines)


def peer_ratios(results: list[Result]) -> str:
    """How many times faster flask-multi-redis is than each peer, per scenario (p50 and throughput)."""
    lines = ["| scenario | peer | peer p50 / ours | ours req/s / peer |", "| --- | --- | ---: | ---: |"]
    for mine in (r for r in results if r.system == ours.SYSTEM and r.p50_us is not None):
        for other in results:
            if (
                other.scenario == mine.scenario
                and not other.system.startswith(ours.SYSTEM)  # ours signed, behind Sentinel, on a cluster
                and other.system != "floor"
                and other.p50_us
            ):
                lines.append(
                    f"| {mine.scenario} | {other.system} | {ratio(other.p50_us, mine.p50_us)} | "
                    f"{ratio(mine.rps, other.rps)} |"
                )
    return "\n".join(lines)


def targets(results: list[Result]) -> list[tuple[str, bool | None, str]]:
    """Each target of the benchmark issue: its name, whether it holds (None: not measured), the figures."""
    seq, seq_floor = find(results, ours.SYSTEM, "sequential"), find(results, "floor", "sequential")
    out: list[tuple[str, bool | None, str]] = []
    if seq and seq_floor and seq.p50_us and seq_floor.p50_us:
        out.append(
            (
                "sequential p50 at most 1.3x the floor",
                seq.p50_us <= 1.3 * seq_floor.p50_us,
                f"{seq.p50_us:.0f} us vs {seq_floor.p50_us:.0f} us: {seq.p50_us / seq_floor.p50_us:.2f}x"
                + _round_ratios(seq, seq_floor),
            )
        )
    transport = find(results, raw_floor.SYSTEM, "sequential")
    if seq and transport and seq.p50_us and transport.p50_us:
        figures = f"{seq.p50_us:.0f} us vs {transport.p50_us:.0f} us: {seq.p50_us / transport.p50_us:.2f}x"
        holds = seq.p50_us <= 1.5 * transport.p50_us
        out.append(("sequential p50 at most 1.5x the transport floor", holds, figures + _round_ratios(seq, transport)))
    for peer, times in (("celery", 10), ("faststream", 10), ("nats", 2)):
        other = find(results, peer, "sequential")
        holds = None if not (seq and other and seq.p50_us and other.p50_us) else other.p50_us >= times * seq.p50_us
        figures = "not measured"
        if holds is not None and other and seq and other.p50_us and seq.p50_us:
            figures = f"{other.p50_us / seq.p50_us:.2f}x faster" + _round_ratios(other, seq)
        out.append((f"sequential p50 at least {times}x faster than {peer}", holds, figures))
    busy, busy_floor = find(results, ours.SYSTEM, "concurrent-64"), find(results, "floor", "concurrent-64")
    if busy and busy_floor and busy.rps and busy_floor.rps:
        out.append(
            (
                "64 in-flight callers: at least the floor's throughput",
                busy.rps >= busy_floor.rps,
                f"{busy.rps:.0f} req/s vs {busy_floor.rps:.0f} req/s: {busy.rps / busy_floor.rps:.2f}x",
            )
        )
    gather = find(results, ours.SYSTEM, "broadcast-4")
    if gather and gather.p50_us:
        out.append(("broadcast gather p50 to 4 workers under 3 ms", gather.p50_us < 3000, f"{gather.p50_us:.0f} us"))
    memory = find(results, ours.SYSTEM, "memory")
    if memory:
        held = memory.extra["idle_web_worker_connections"]
        out.append(("at most 2 Redis connections per idle web process", held <= 2, f"{held} connections"))
    return out + handler_io.verdicts(results) + curves.verdicts(results)


def plot(results: list[Result], path: Path) -> bool:
    """Latency distributions (sequential) and throughput (concurrent) per system; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    sequential = [r for r in results if r.scenario == "sequential" and r.latencies_us]
    if not sequential:  # a run of other scenarios only: nothing to draw
        return False
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    left.boxplot([r.latencies_us for r in sequential], tick_labels=[r.system for r in sequential], showfliers=False)
    left.set_yscale("log")
    left.set_ylabel("round trip (us, log scale)")
    left.set_title("Sequential request/reply latency")
    scenarios = sorted({r.scenario for r in results if r.scenario.startswith("concurrent-")}, key=lambda s: int(s[11:]))
    systems = sorted({r.system for r in results if r.scenario in scenarios})
    width = 0.8 / max(1, len(systems))
    for index, system in enumerate(systems):
        values = [(find(results, system, s).rps or 0) if find(results, system, s) else 0 for s in scenarios]
        right.bar([x + index * width for x in range(len(scenarios))], values, width, label=system)
    right.set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(scenarios))])
    right.set_xticklabels([s.replace("concurrent-", "") + " in flight" for s in scenarios])
    right.set_ylabel("requests/s")
    right.set_title("Throughput, one gevent caller process")
    right.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def report(results: list[Result], info: dict[str, Any], plotted: bool) -> str:
    checks = "\n".join(
        f"| {name} | {'holds' if holds else 'not measured' if holds is None else 'does NOT hold'} | {figures} |"
        for name, holds, figures in targets(results)
    )
    others = "\n".join(
        f"- {r.scenario}: " + ", ".join(f"{key} {value}" for key, value in r.extra.items())
        for r in results
        if r.system == ours.SYSTEM and r.scenario in ("memory",)
    )
    codec = "\n".join(
        f"- {r.scenario}: {r.rps:.0f} encode+decode per second ({r.extra.get('bytes')} bytes on the wire)"
        for r in results
        if r.scenario.startswith("codec-")
    )
    packages = ", ".join(f"{name} {version}" for name, version in info["packages"].items())
    notes = TARGETS_NOTE.read_text() if TARGETS_NOTE.exists() else ""
    picture = "![latency and throughput](benchmarks/results/benchmarks.png)" if plotted else "(no matplotlib: no plot)"
    cpu = cpu_table(results)
    if cpu:
        cpu = (
            "CPU per sequential call in each process: the caller, the server (our worker, the floor's responder) "
            "and Redis,\nall threads, from `/proc/<pid>/task/*/schedstat` during the timed calls (median of "
            f"the rounds):\n\n{cpu}\n"
        )
    return f"""# Benchmarks

Written by `make bench` (`python -m benchmarks.run`) on {info["date"]}; every figure below comes from one run,
with all systems measured side by side on the same machine and the same private redis-server.

## Machine

{info["platform"]}, {info["cpus"]} CPUs, Python {info["python"]}, redis-server {info["redis_server"]}.
Packages: {packages}.

## Method

- A private `redis-server` on a free loopback port (no persistence) serves every system in turn.
- **Sequential**: one caller process, one worker process, requests one after another; p50, p99, requests/s;
  ours also with every message signed (`flask-multi-redis signed`).
  Every system (ours, the floor, each peer) runs in each of five rounds in turn with as many calls and the same
  warm-up (one call, then 20), and the median of its rounds' p50 and p99 is reported, so that the machine's
  drift during the run weighs on all alike. The target on the floor also shows the range of the per-round
  ratios.
- **Concurrent**: one gevent caller process with 1, 16 or 64 greenlets calling in a loop, one worker process.
- **Broadcast**: a gathered broadcast to 4 gunicorn gevent web workers, timed until all 4 replies are in.
- **Codec**: validate, serialize, wrap, parse and validate back one small and one 10 KB pydantic payload.
- **Memory**: RSS of an idle gunicorn gevent web worker with its listener, and the connections each process
  holds (Redis `CLIENT LIST`, by the names the broker gives its connections).
- **Floor**: hand-written redis-py: PUBLISH the request, the responder LPUSHes the reply to a per-request
  list, the caller BLPOPs it. No framework, no validation. The **hiredis floor** (the transport floor) sends
  the same messages over raw sockets parsed by hiredis: PUBLISH and BLPOP in one write, RPUSH and PEXPIRE in
  one write (`benchmarks/raw_floor.py`).
- Peers (when installed, `pip install '.[bench]'`): Celery (Redis broker and result backend), RQ
  (SimpleWorker), FastStream (`RedisBroker.request`), and NATS (nats-py request/reply against a nats-server of
  its own, the same pydantic validation at both ends). How each one runs is in `benchmarks/peers.py`.

## Results

{table(results)}

Ratios to the peers (above 1x: flask-multi-redis is faster):

{peer_ratios(results)}

{signing(results)}

{codec}
{others}

{cpu}
{picture}

## Behind Sentinel and on a Redis Cluster

Ours again, in the same run, behind Redis Sentinel (a primary, a replica, three sentinels with
`down-after-milliseconds 1000`) and on a Redis Cluster (three primaries with a replica each,
`cluster-node-timeout 1000`), all local: sequential p50, 64 greenlets in flight, and a gather to 4 gunicorn
gevent workers; then eight callers (requests with a 2 s timeout) while the broker's primary is killed
(SIGKILL). *First success* is the time from the kill to the end of the first successful call begun after it;
*hung* counts calls that ended past their deadline and 1 s. What each process holds there:
[docs/deployment.md](docs/deployment.md).

{topologies.table(results)}

## Handlers that do work

{handler_io.__doc__.split(chr(10) + chr(10))[0]} Median p50 of the rounds (their range):

{handler_io.table(results)}

## Curves as work grows

{curves.__doc__.split(chr(10) + chr(10))[0]}

{curves.section(results)}

![curves](benchmarks/results/curves.png)

## Typed collections and locks

Operations per second, one caller, on a private redis-server of their own, ours and pottery (sync) in turn in
three alternating rounds (the median); each operation starts from a collection of 100 elements (the list grows
as `append` runs). Above 1x, ours is faster.

{collections_bench.table(results)}

## Targets

| target | verdict | figures |
| --- | --- | --- |
{checks}

{notes}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds; BENCHMARKS.md is kept")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="where results go")
    parser.add_argument(
        "--systems",
        default="ours,floor,peers,handlers,curves,collections,topologies",
        help="comma-separated: ours, floor, peers, handlers, curves, collections (and locks: pottery), topologies",
    )
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from --out's results.json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        stored = json.loads((args.out / "results.json").read_text())
        info, results = stored["machine"], [Result.from_json(r) for r in stored["results"]]
    else:
        info = machine()
        results = measure(args.quick, set(args.systems.split(",")))
        (args.out / "results.json").write_text(
            json.dumps({"machine": info, "results": [r.as_json() for r in results]}, indent=1)
        )
    (args.out / "results.md").write_text(table(results) + "\n")
    plotted = plot(results, args.out / "benchmarks.png")
    curves.plot(results, args.out / "curves.png")
    print(table(results))
    print(topologies.table(results))
    print(collections_bench.table(results), handler_io.table(results), sep="\n")
    print(cpu_table(results))
    print(curves.section(results))
    for name, holds, figures in targets(results):
        print(f"{'HOLDS' if holds else 'n/a' if holds is None else 'FAILS'}: {name} ({figures})")
    if not args.quick:
        (ROOT / "BENCHMARKS.md").write_text(report(results, info, plotted))
        print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
