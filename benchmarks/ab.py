"""A/B of the sequential round trip, of the throughput of concurrent callers (``--callers 64``), or of a
gathered broadcast to gunicorn gevent web workers (``--gather 16``): this checkout against another tree of the
project (say a ``git worktree`` of the commit before a change), alternating whole runs, worker and caller, of
each.

    git worktree add /tmp/base <commit>
    python -m benchmarks.ab /tmp/base --rounds 6 --calls 3000

Each round runs B (the other tree) then A (this one), or A then B in every other round, each with its own
``flask-redis-worker`` and caller processes importing that tree's code, against one redis-server of the
benchmark's own. It prints every round's p50 (calls per second with ``--callers``), the ratio A/B, and the
median ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
from pathlib import Path

import redis

from benchmarks.bench_app import ping
from benchmarks.common import ROOT, bench_redis, python
from benchmarks.ours import preloaded_gevent_workers, wait
from flask_multi_redis.broker import names

APP = "benchmarks.bench_app:create_app()"


def env_for(tree: Path, url: str, extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, "REDIS_URL": url, "PYTHONPATH": str(tree), "PYTHONUNBUFFERED": "1", **extra}


def one_run(tree: Path, url: str, calls: int, callers: int = 0, extra: dict[str, str] | None = None) -> float:
    """The p50 in microseconds of ``calls`` sequential calls, or with ``callers`` the calls per second of that
    many gevent callers at once, with ``tree``'s code on both sides (each process runs in ``tree``, which comes
    first on its path: the installed checkout does not)."""
    env = env_for(tree, url, extra or {})
    worker_argv = [python(), "-m", "flask_multi_redis.worker.launch", APP, "--router", "benchmarks.bench_app:router"]
    worker = subprocess.Popen([*worker_argv, "-l", "warning"], env=env, cwd=tree, stdout=subprocess.DEVNULL)
    try:
        wait_registered(url)
        mode = ["concurrent", str(callers)] if callers else ["sequential"]
        caller = [python(), "-m", "benchmarks.ours_caller", *mode, str(calls)]
        done = subprocess.run(caller, env=env, cwd=tree, capture_output=True, text=True, timeout=600, check=True)
    finally:
        worker.terminate()
        worker.wait(30)
    redis.Redis.from_url(url).flushall()
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return float(result["rps"] if callers else result["p50_us"])


def one_gather(tree: Path, url: str, calls: int, workers: int) -> float:
    """The p50 in microseconds of ``calls`` gathered broadcasts to ``workers`` gunicorn gevent web workers
    (``--preload``), with ``tree``'s code in every process."""
    env = env_for(tree, url, {})
    web = subprocess.Popen(
        preloaded_gevent_workers(workers), env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        caller = [python(), "-m", "benchmarks.ours_caller", "gather", str(workers), str(calls)]
        client, channel = redis.Redis.from_url(url), names.command_channel("bench", ping.name)
        wait(f"{workers} web workers listening", lambda: client.pubsub_numsub(channel)[0][1] >= workers, 60)
        done = subprocess.run(caller, env=env, cwd=tree, capture_output=True, text=True, timeout=600, check=True)
    finally:
        web.terminate()
        web.wait(30)
    redis.Redis.from_url(url).flushall()
    return float(json.loads(done.stdout.strip().splitlines()[-1])["p50_us"])


def wait_registered(url: str, timeout: float = 30) -> None:
    client = redis.Redis.from_url(url)
    wait("the worker's registration", lambda: bool(client.keys("bench:fmr:serves:*")), timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="the other tree (B)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--callers", type=int, default=0, help="gevent callers at once (calls per second, not p50)")
    parser.add_argument("--gather", type=int, default=0, help="gunicorn gevent web workers to gather from")
    parser.add_argument("--env-a", action="append", default=[], metavar="NAME=VALUE", help="for A's processes only")
    args = parser.parse_args()
    other = args.other.resolve()
    env_a = dict(pair.split("=", 1) for pair in args.env_a)  # say BENCH_SIGNING_KEY=... to time signing
    ratios: list[float] = []
    with bench_redis() as url:
        one_run(ROOT, url, 200)  # warm the machine up
        unit = "calls/s" if args.callers else "us"
        for round_no in range(args.rounds):
            order = [("A", ROOT), ("B", other)] if round_no % 2 else [("B", other), ("A", ROOT)]
            figure = {
                label: one_gather(tree, url, args.calls, args.gather)
                if args.gather
                else one_run(tree, url, args.calls, args.callers, env_a if label == "A" else None)
                for label, tree in order
            }
            ratios.append(figure["A"] / figure["B"])
            print(
                f"round {round_no + 1}: A {figure['A']:.1f} {unit}  B {figure['B']:.1f} {unit}  A/B {ratios[-1]:.3f}",
                flush=True,
            )
    summary = {"rounds": len(ratios), "median_ratio": round(statistics.median(ratios), 3), "ratios": ratios}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
