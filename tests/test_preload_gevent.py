"""gunicorn --preload with gevent workers, against real Redis and real gunicorn processes: what the master made
before the fork (a lock, a pool) must not freeze a worker that gevent patched after it (flask_multi_redis/forks.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from examples.local_redis import free_port

from .conftest import ROOT
from .servers import RedisServer
from .topologies import Cluster, SentinelSet
from .waiting import wait_until

APP = "tests.apps.preload_gevent:create_app()"


class Gunicorn:
    """A gunicorn master in a process group of its own: its workers are killed with it, whatever happens."""

    def __init__(self, env: dict[str, str], *options: str) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "gunicorn", "--no-control-socket", *options, "-b", f"127.0.0.1:{self.port}", APP]
        self.process = subprocess.Popen(argv, env=env, cwd=ROOT, start_new_session=True)

    def get(self, path: str, timeout: float = 10) -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=timeout) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def answers(self) -> bool:
        try:
            self.get("/pid", timeout=2)
        except OSError:
            return False
        return True

    def kill(self) -> None:
        """SIGTERM to the whole group, then SIGKILL to whatever is left of it (a hung worker, say)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture
def gunicorn(broker_env: dict[str, str]) -> Iterator[Callable[..., Gunicorn]]:
    started: list[Gunicorn] = []

    def start(*options: str) -> Gunicorn:
        server = Gunicorn(broker_env, *options)
        started.append(server)
        wait_until(server.answers, timeout=30)
        return server

    yield start
    for server in started:
        server.kill()


# --- the Redlock's thread pool in a --preload gevent worker ------------------------------------------------------


def test_a_redlock_in_a_preloaded_gevent_worker_does_not_freeze_it(
    gunicorn: Callable[..., Gunicorn], broker_env: dict[str, str], broker_server: RedisServer
) -> None:
    """The sync Redlock's thread pool is made on first use in each process (flask_multi_redis/lock/redlock.py):
    made in a fork hook, which under gunicorn --preload -k gevent runs before the worker patches, its work queue
    would be a real ``_queue.SimpleQueue``, and its first worker, a greenlet, would block the whole process in
    ``get(block=True)``."""
    base = broker_server.url.rstrip("/")
    broker_env["LOCK_URLS"] = " ".join(f"{base}/{db}" for db in (1, 2, 3))  # three independent "servers"
    web = gunicorn("-w", "1", "-k", "gevent", "--preload", "--graceful-timeout", "2")
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(web.get, "/lock", 10)
        outcome = first.exception(15)
    assert outcome is None, f"the first /lock of a preloaded gevent worker did not answer: {outcome!r}"
    assert web.get("/pid", timeout=5)["pid"] == first.result()["pid"]  # the worker still serves


# --- locks made in a preloading master, held across I/O in a gevent worker ----------------------------------------


def concurrent_first_uses(web: Gunicorn, count: int = 20) -> list[BaseException | None]:
    """``count`` requests to /get at once, the first ones that need a connection in that worker; how each ended."""
    with ThreadPoolExecutor(count) as pool:
        calls = [pool.submit(web.get, "/get", 10) for _ in range(count)]
        return [call.exception(20) for call in calls]


def test_concurrent_first_commands_behind_sentinels_do_not_deadlock_a_preloaded_gevent_worker(
    gunicorn: Callable[..., Gunicorn], broker_env: dict[str, str], sentinel_set: SentinelSet
) -> None:
    """SerializedSentinel's lookup lock is held across network I/O (a greenlet switch): made in the master
    under --preload it would be a real OS lock, and a second greenlet looking up meanwhile would block the
    worker's only thread on it for good. It is a ProcessLock, made in the worker after patching."""
    broker_env["REDIS_URL"] = sentinel_set.url
    web = gunicorn("-w", "1", "-k", "gevent", "--preload", "--graceful-timeout", "2")
    outcomes = concurrent_first_uses(web)
    assert outcomes == [None] * len(outcomes), f"requests that did not answer: {outcomes}"
    assert web.answers()


def test_concurrent_first_commands_on_a_cluster_do_not_deadlock_a_preloaded_gevent_worker(
    gunicorn: Callable[..., Gunicorn], broker_env: dict[str, str], redis_cluster: Cluster
) -> None:
    """The per-app lock is held while a cluster session reads its slot map (network I/O): as above, a
    ProcessLock, made in the worker after patching."""
    broker_env["REDIS_URL"] = redis_cluster.url
    web = gunicorn("-w", "1", "-k", "gevent", "--preload", "--graceful-timeout", "2")
    outcomes = concurrent_first_uses(web)
    assert outcomes == [None] * len(outcomes), f"requests that did not answer: {outcomes}"
    assert web.answers()
