"""What every benchmark shares: results, latency summaries, a Redis of its own, and child processes."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from examples.local_redis import throwaway_redis

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    """One measured figure set: a system (``flask-multi-redis``, ``floor``, ``celery``, ...) in one scenario."""

    system: str
    scenario: str  # "sequential", "concurrent-1", "concurrent-16", "concurrent-64", "broadcast-4", "codec-small", ...
    n: int
    p50_us: float | None = None
    p99_us: float | None = None
    rps: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    latencies_us: list[float] = field(default_factory=list, repr=False)  # a sample, for the plot

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        return cls(**data)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def summarize(system: str, scenario: str, latencies_s: Sequence[float], elapsed_s: float, **extra: Any) -> Result:
    """A Result from per-call latencies (seconds) and the wall time the calls took together."""
    ordered = sorted(latencies_s)
    sample = ordered[:: max(1, len(ordered) // 400)]  # enough for the plot, small enough to keep in git
    return Result(
        system=system,
        scenario=scenario,
        n=len(ordered),
        p50_us=round(percentile(ordered, 0.50) * 1e6, 1),
        p99_us=round(percentile(ordered, 0.99) * 1e6, 1),
        rps=round(len(ordered) / elapsed_s, 1),
        extra=extra,
        latencies_us=[round(value * 1e6, 1) for value in sample],
    )


def bench_redis() -> contextlib.AbstractContextManager[str]:
    """A redis-server of the benchmark's own on a free port (no persistence); its URL. Never REDIS_URL's server,
    and never the shared 6379: the figures must not depend on what else runs there."""
    return throwaway_redis()


def child_env(url: str, **extra: str) -> dict[str, str]:
    """The environment of a benchmark child process: the bench Redis, the repository importable."""
    return {**os.environ, "REDIS_URL": url, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **extra}


def run_json(argv: Sequence[str], env: dict[str, str], timeout: float = 600) -> Any:
    """Run a child that prints one JSON document as its last stdout line; that document."""
    done = subprocess.run(list(argv), env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def python() -> str:
    return sys.executable


#: ``server=<pid>,redis=<pid>``: a sequential caller child also measures the CPU these processes use.
CPU_PIDS = "BENCH_CPU_PIDS"


def cpu_time(pid: int) -> float | None:
    """Seconds of CPU the threads of process ``pid`` have run so far (Linux ``/proc/<pid>/task/*/schedstat``,
    nanoseconds); None where there is no such file."""
    total, found = 0, False
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            total += int((task / "schedstat").read_text().split()[0])
            found = True
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return total / 1e9 if found else None


def redis_pid(url: str) -> int:
    """The process id of the redis-server at ``url``."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


def combine(rounds: list[Result]) -> Result:
    """One result from alternating rounds of the same scenario: the median of their p50 and of their p99, and
    the requests/s of all their calls together."""
    if len(rounds) == 1:
        return rounds[0]
    first = rounds[0]
    timed = [r for r in rounds if r.rps and r.p50_us is not None and r.p99_us is not None]
    n, elapsed = sum(r.n for r in timed), sum(r.n / r.rps for r in timed if r.rps)
    return Result(
        system=first.system,
        scenario=first.scenario,
        n=n,
        p50_us=statistics.median(r.p50_us for r in timed if r.p50_us is not None) if timed else None,
        p99_us=statistics.median(r.p99_us for r in timed if r.p99_us is not None) if timed else None,
        rps=round(n / elapsed, 1) if elapsed else None,
        extra={**first.extra, "rounds_p50_us": [r.p50_us for r in rounds], **_median_cpu(rounds)},
        latencies_us=[value for r in rounds for value in r.latencies_us],
    )


def _median_cpu(rounds: list[Result]) -> dict[str, Any]:
    measured = [r.extra["cpu_us_per_call"] for r in rounds if r.extra.get("cpu_us_per_call")]
    if not measured:
        return {}
    return {"cpu_us_per_call": {name: statistics.median(m[name] for m in measured) for name in measured[0]}}


def machine() -> dict[str, Any]:
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False)
    versions = {}
    for package in (
        "redis",
        "hiredis",
        "pydantic",
        "orjson",
        "gevent",
        "flask",
        "celery",
        "rq",
        "faststream",
        "nats-py",
    ):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "redis_server": redis_version.stdout.split()[2].removeprefix("v=") if redis_version.stdout else "?",
        "packages": versions,
        "date": time.strftime("%Y-%m-%d"),
    }
