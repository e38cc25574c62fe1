"""The benchmark's smoke run: every scenario of ours and the floor runs for a few seconds, so it cannot rot.

The figures themselves are not asserted here; BENCHMARKS.md reports them (``make bench``)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT


def quick_run(systems: str, out: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """``python -m benchmarks.run --quick`` of ``systems``, its results in ``out``. The run has a process group of
    its own, killed whole if the test ends first (a timeout): its workers and redis-servers would outlive it."""
    argv = [sys.executable, "-m", "benchmarks.run", "--quick", "--systems", systems, "--out", str(out)]
    pipe = subprocess.PIPE
    with subprocess.Popen(argv, cwd=ROOT, stdout=pipe, stderr=pipe, text=True, start_new_session=True) as run:
        try:
            stdout, stderr = run.communicate(timeout=timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.pid, signal.SIGKILL)  # what is left of the group, if anything
    return subprocess.CompletedProcess(argv, run.returncode, stdout, stderr)


def test_a_quick_benchmark_run_writes_its_results(tmp_path: Path) -> None:
    done = quick_run("ours,floor,handlers", tmp_path, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    measured = {(result["system"], result["scenario"]) for result in results}
    for scenario in (
        "sequential",
        "concurrent-1",
        "concurrent-16",
        "broadcast-4",
        "memory",
        "codec-small",
        "codec-10kb",
    ):
        assert ("flask-multi-redis", scenario) in measured
    assert {("floor", "sequential"), ("floor", "concurrent-16"), ("hiredis floor", "sequential")} <= measured
    from benchmarks.handler_io import SERVERS  # a handler doing one Redis command, served by each kind of server

    assert {(server, "handler-incr") for server in SERVERS} <= measured
    assert "one-INCR handler, gunicorn gevent: at most 1.1x the redis-py responder" in done.stdout
    assert "sequential p50 at most 1.5x the transport floor" in done.stdout
    timed = [result for result in results if result["p50_us"] is not None]
    assert all(result["n"] > 0 and result["p99_us"] >= result["p50_us"] > 0 for result in timed)
    assert (tmp_path / "results.md").read_text().startswith("| scenario | system |")
    assert "broadcast gather p50 to 4 workers under 3 ms" in done.stdout  # the targets are checked and printed
    assert "wrote BENCHMARKS.md" not in done.stdout  # a quick run leaves the report alone


def test_a_quick_run_behind_sentinel_and_on_a_cluster(tmp_path: Path) -> None:
    """The topologies' scenarios run too, and their failover leaves no hung call."""
    done = quick_run("topologies", tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    for system in ("flask-multi-redis Sentinel", "flask-multi-redis Cluster"):
        found = {result["scenario"]: result for result in results if result["system"] == system}
        assert {"sequential", "concurrent-64", "broadcast-4", "failover"} <= set(found)
        assert found["failover"]["extra"]["hung"] == 0
        assert found["failover"]["extra"]["recovery_s"] is not None
    assert "| system | sequential p50 | 64 in flight |" in done.stdout


def test_a_quick_run_of_the_collections(tmp_path: Path) -> None:
    """Ours (sync and asyncio) against pottery and purse when they are installed (make bench), ours alone
    otherwise."""
    done = quick_run("collections", tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    for system in ("flask-multi-redis", "flask-multi-redis asyncio"):
        ours = {r["scenario"] for r in results if r["system"] == system}
        assert {
            "collection: list append",
            "collection: hash update of 100 keys",
            "collection: lock acquire + release",
        } <= ours
    assert all(r["rps"] > 0 for r in results if r["scenario"].startswith("collection: "))
    assert "| operation | ours ops/s | pottery ops/s | ours / pottery | ours asyncio ops/s |" in done.stdout


def test_a_quick_run_of_the_curves(tmp_path: Path) -> None:
    """Every curve gets its points, the caller's memory is measured with every held call ended, and the curves'
    targets are checked."""
    done = quick_run("curves", tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    scenarios = {result["scenario"]: result for result in results}
    for curve in ("gather-1", "gather-4", "payload-100", "payload-10240", "in-flight-16", "responders-2"):
        assert scenarios[f"curve-{curve}"]["p50_us"] > 0
    held = scenarios["curve-caller-memory"]["extra"]
    assert held["waiting_at_peak"] == 500
    assert sum(held["outcomes"].values()) == 500
    assert "at most 2 connections per idle web worker, 1 to 64 of them" in done.stdout
    if importlib.util.find_spec("matplotlib") is not None:  # the bench extra draws them
        assert (tmp_path / "curves.png").stat().st_size > 0
