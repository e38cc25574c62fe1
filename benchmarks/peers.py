"""The peers: the same request/reply round trip ``add(i, 1)`` through Celery, RQ and FastStream over the bench Redis.

Each peer gets a database of its own on the given server (Celery 1, RQ 2, FastStream 3; pub/sub channels are
server-wide, so FastStream's channel name is unique per run). Its worker is a subprocess started with
``REDIS_URL`` pointing there, terminated and reaped at the end even on errors; every caller is a child process that
first waits for the worker to answer one call, then warms up, then is timed (:mod:`benchmarks.peer_apps.driver`).

- ``celery``: Redis broker + Redis result backend, caller ``add.delay(i, 1).get()``.
  ``sequential``: worker ``-P solo`` (one task at a time, in the worker's main thread).
  ``concurrent-C``: one worker ``-P gevent -c max(C)`` for every C, callers are C greenlets in a gevent-patched child.
  The app sets ``result_backend_thread_safe`` (one backend per process, not one per greenlet, i.e. per task).
  A gevent worker answers one call at a time ~2 ms slower than a solo one but serves 16 and more callers faster.
- ``rq``: one ``SimpleWorker`` (jobs run in the worker process itself, no fork), caller ``queue.enqueue(add, i, 1)``
  then ``job.latest_result(timeout=...)``; concurrent callers are greenlets. RQ runs one job at a time, so its
  concurrent request counts are capped (:data:`RQ_CONCURRENT_CAP`, recorded in ``extra``).
- ``faststream``: ``RedisBroker`` worker (an asyncio process) with a pub/sub channel subscriber, caller
  ``await broker.request(...)``. ``sequential``: the subscriber handles one message at a time; ``concurrent-C``:
  a second worker whose subscriber takes ``max_workers = max(C)`` messages at once, and the C callers are asyncio
  tasks in one process instead of greenlets.

- ``nats``: request/reply with nats-py against a nats-server of its own on a free port (installed with apt-get
  when missing and this runs as root; skipped with a note otherwise), the responder an asyncio process
  subscribed to the subject, both ends validating with the same pydantic models as ours; concurrent callers
  are asyncio tasks.

A peer whose package is not importable is skipped with a printed note.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from benchmarks.common import Result, child_env, python
from benchmarks.floor import running, time_caller, wait_for_subscriber
from examples.local_redis import free_port

RQ_CONCURRENT_CAP = 1000  # RQ requests per concurrent scenario at most: one job at a time keeps the run under ~90 s


def with_db(url: str, db: int) -> str:
    """``url`` with its database number replaced by ``db``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


def run_celery(url: str, n_seq: int, n_conc: int, concurrencies: tuple[int, ...]) -> list[Result]:
    """Time Celery: ``sequential`` against a ``-P solo`` worker, ``concurrent-C`` against a ``-P gevent`` one."""
    env = child_env(with_db(url, 1))
    worker = [python(), "-m", "celery", "-A", "benchmarks.peer_apps.celery_tasks", "worker", "-l", "WARNING"]
    worker += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    caller = ["benchmarks.peer_apps.celery_caller"]
    results = []
    if n_seq:
        with running([*worker, "-P", "solo"], env, "celery worker -P solo"):
            results.append(time_caller("celery", caller, env, n_seq, worker="-P solo", caller="plain loop"))
    if concurrencies:
        pool = f"-P gevent -c {max(concurrencies)}"
        with running([*worker, *pool.split()], env, f"celery worker {pool}"):
            for concurrency in concurrencies:
                results.append(
                    time_caller("celery", caller, env, n_conc, concurrency, worker=pool, caller="gevent greenlets")
                )
    return results


def run_rq(url: str, n_seq: int, n_conc: int, concurrencies: tuple[int, ...]) -> list[Result]:
    """Time RQ with one SimpleWorker: ``sequential`` and ``concurrent-C`` (at most :data:`RQ_CONCURRENT_CAP` calls)."""
    from benchmarks.peer_apps.rq_jobs import QUEUE

    bench_url = with_db(url, 2)
    env = child_env(bench_url)
    worker = [python(), "-m", "rq.cli", "worker", QUEUE, "--worker-class", "rq.worker.SimpleWorker"]
    worker += ["--url", bench_url, "--logging_level", "WARNING"]
    caller = ["benchmarks.peer_apps.rq_caller"]
    info = {"worker": "SimpleWorker", "caller": "plain loop"}
    with running(worker, env, "rq SimpleWorker"):
        results = [time_caller("rq", caller, env, n_seq, **info)] if n_seq else []
        info["caller"] = "gevent greenlets"
        for concurrency in concurrencies:
            n = min(n_conc, RQ_CONCURRENT_CAP)
            capped = {"capped_from": n_conc} if n < n_conc else {}
            results.append(time_caller("rq", caller, env, n, concurrency, **info, **capped))
    return results


def run_faststream(url: str, n_seq: int, n_conc: int, concurrencies: tuple[int, ...]) -> list[Result]:
    """Time FastStream: ``sequential`` against a one-at-a-time subscriber, ``concurrent-C`` (asyncio tasks) against
    one with ``max_workers = max(C)``."""
    bench_url = with_db(url, 3)
    channel = f"bench.faststream.{uuid.uuid4().hex[:12]}"
    worker = [python(), "-m", "benchmarks.peer_apps.faststream_app"]
    caller = ["benchmarks.peer_apps.faststream_caller"]
    env = child_env(bench_url, BENCH_CHANNEL=channel)
    results = []
    if n_seq:
        with running(worker, env, "faststream worker") as process:
            wait_for_subscriber(bench_url, channel, process)
            results.append(time_caller("faststream", caller, env, n_seq, worker="max_workers=1", caller="plain loop"))
    if concurrencies:
        max_workers = max(concurrencies)
        env = child_env(bench_url, BENCH_CHANNEL=channel, FASTSTREAM_MAX_WORKERS=str(max_workers))
        with running(worker, env, f"faststream worker max_workers={max_workers}") as process:
            wait_for_subscriber(bench_url, channel, process)
            for concurrency in concurrencies:
                results.append(
                    time_caller(
                        "faststream",
                        caller,
                        env,
                        n_conc,
                        concurrency,
                        gevent=False,
                        worker=f"max_workers={max_workers}",
                        caller="asyncio tasks",
                    )
                )
    return results


def nats_server() -> str | None:
    """The nats-server binary: on the PATH (or Debian's /usr/sbin), else installed with apt-get when possible."""
    found = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin:/usr/bin")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("peers: installing nats-server with apt-get")
        for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nats-server"]):
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            subprocess.run(argv, env=env, capture_output=True, check=False)
        found = shutil.which("nats-server", path="/usr/sbin:/usr/bin")
    return found


def run_nats(url: str, n_seq: int, n_conc: int, concurrencies: tuple[int, ...]) -> list[Result]:
    """Time NATS request/reply: a nats-server of its own, one asyncio responder; ``sequential`` and
    ``concurrent-C`` (asyncio tasks)."""
    binary = nats_server()
    if binary is None:
        print("peers: nats skipped, no nats-server (apt-get install nats-server)")
        return []
    port = free_port()
    env = child_env(url, NATS_URL=f"nats://127.0.0.1:{port}", BENCH_SUBJECT=f"bench.add.{uuid.uuid4().hex[:8]}")
    caller = ["benchmarks.peer_apps.nats_caller"]
    info = {"worker": "nats-py responder, 1 asyncio process", "server": f"nats-server on port {port}"}
    with running([binary, "-a", "127.0.0.1", "-p", str(port)], env, "nats-server"):
        _wait_for_port(port)
        with running([python(), "-m", "benchmarks.peer_apps.nats_app"], env, "nats responder"):
            results = [time_caller("nats", caller, env, n_seq, **info, caller="plain loop")] if n_seq else []
            for concurrency in concurrencies:
                results.append(
                    time_caller("nats", caller, env, n_conc, concurrency, gevent=False, **info, caller="asyncio tasks")
                )
    return results


def _wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)  # polling interval of a condition with a deadline


PEERS: dict[str, tuple[str, str, Callable[[str, int, int, tuple[int, ...]], list[Result]]]] = {
    # system: (module that must be importable, distribution whose version is recorded, runner)
    "celery": ("celery", "celery", run_celery),
    "rq": ("rq", "rq", run_rq),
    "faststream": ("faststream.redis", "faststream", run_faststream),
    "nats": ("nats", "nats-py", run_nats),
}


@functools.cache
def installed(system: str) -> bool:
    """Whether a peer can be measured here; says so once when it cannot."""
    module = PEERS[system][0]
    try:
        found = importlib.util.find_spec(module) is not None
    except ImportError:  # the parent package is missing
        found = False
    if not found:
        print(f"peers: {system} skipped, {module} is not importable (pip install -e '.[bench]')")
    return found


def run(url: str, n_seq: int, n_conc: int, concurrencies: tuple[int, ...]) -> list[Result]:
    """Time every importable peer: ``sequential`` (``n_seq`` calls) and ``concurrent-C`` (``n_conc`` calls)."""
    results: list[Result] = []
    for system, (_, distribution, runner) in PEERS.items():
        if not installed(system):
            continue
        version = importlib.metadata.version(distribution)
        for result in runner(url, n_seq, n_conc, concurrencies):
            result.extra["version"] = version
            results.append(result)
    return results
