"""flask-redis-worker end to end: real worker processes serving tests/apps/svc.py, stopped by real signals."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import NoResponders

from .apps.svc import AddIn, AddOut, Gate, add, gate, whoami
from .gates import call_at_gate
from .processes import APP, WORKER, WorkerProcess, run_cli
from .waiting import wait_until


def handlers_at_gate(session: redis.Redis) -> list[dict[str, Any]]:
    """Connections in BLPOP that the broker did not open (it names its own): the gate handlers'."""
    return [client for client in session.client_list() if client.get("cmd") == "blpop" and not client.get("name")]


def test_the_worker_serves_requests_in_its_own_process(
    start_worker: Callable[..., WorkerProcess], caller: FlaskRedisSingle
) -> None:
    worker = start_worker("--router", "tests.apps.svc:backend")
    out = caller.broker.request(add, AddIn(a=1, b=2), timeout=5)
    assert (out.sum, out.pid) == (3, worker.pid)
    (reply,) = caller.broker.broadcast(whoami, None, gather=True, timeout=5)
    assert reply.value is not None
    assert (reply.value.pid, reply.value.role, reply.value.app, reply.value.greenlet) == (
        worker.pid,
        "worker",
        "svc",
        False,
    )


def test_the_gevent_pool_patches_before_anything_else(
    start_worker: Callable[..., WorkerProcess], caller: FlaskRedisSingle
) -> None:
    worker = start_worker("--router", "tests.apps.svc:backend", "--pool", "gevent", "--concurrency", "50")
    assert "pool=gevent concurrency=50" in worker.log
    (reply,) = caller.broker.broadcast(whoami, None, gather=True, timeout=5)
    assert reply.value is not None
    assert reply.value.greenlet  # handlers run in greenlets
    assert caller.broker.request(add, AddIn(a=2, b=2), timeout=5).pid == worker.pid
    assert "MonkeyPatchWarning" not in worker.log  # nothing (ssl, Flask, redis-py) was imported before the patch


def test_sigterm_lets_requests_in_flight_finish(
    start_worker: Callable[..., WorkerProcess], caller: FlaskRedisSingle
) -> None:
    worker = start_worker("--router", "tests.apps.svc:backend", "--grace", "20")
    session = caller.getRedis()
    callers, results = call_at_gate(caller, "gate:term", 3, timeout=20)
    wait_until(lambda: len(handlers_at_gate(session)) == 3)
    started = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    worker.wait_for_log("stopping")
    with pytest.raises(NoResponders):  # it takes nothing new while it drains
        caller.broker.request(add, AddIn(a=1, b=1), timeout=5)
    session.rpush("gate:term", 1, 2, 3)  # the three handlers in flight finish now
    for thread in callers:
        thread.join(20)
    assert worker.finish() == 0
    assert time.monotonic() - started < 20
    assert [type(result) for result in results] == [AddOut, AddOut, AddOut]
    assert "stopped" in worker.log


def test_a_second_signal_exits_at_once(start_worker: Callable[..., WorkerProcess], caller: FlaskRedisSingle) -> None:
    worker = start_worker("--router", "tests.apps.svc:backend", "--grace", "60")
    session = caller.getRedis()
    holder = threading.Thread(target=lambda: _expect_timeout(caller))
    holder.start()
    wait_until(lambda: len(handlers_at_gate(session)) == 1)
    worker.process.send_signal(signal.SIGTERM)
    worker.wait_for_log("stopping")
    worker.process.send_signal(signal.SIGINT)
    assert worker.finish(timeout=10) == 1  # not the 60 s grace
    assert "second signal (SIGINT)" in worker.log
    holder.join(10)
    session.rpush("gate:second", 1)


def _expect_timeout(caller: FlaskRedisSingle) -> None:
    from flask_multi_redis.broker import RequestTimeout

    with pytest.raises(RequestTimeout):  # the worker died with it: the caller gets a typed error, not a hang
        caller.broker.request(gate, Gate(key="gate:second"), timeout=3)


def test_check_passes_when_everything_loads(broker_env: dict[str, str]) -> None:
    done = run_cli(broker_env, WORKER, APP, "--router", "tests.apps.svc:backend", "--check")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: app 'svc', Redis at redis://")
    assert "math.add" in done.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ((APP, "--check"), 1, "Error: Redis at redis://127.0.0.1:1/0 is unreachable"),
        (("tests.apps.nowhere:create_app()", "--check"), 2, "Invalid value for 'MODULE:APP'"),
        ((APP, "--router", "tests.apps.nowhere:router", "--check"), 2, "Invalid value for '--router'"),
        ((APP, "--router", "tests.apps.svc:add", "--check"), 2, "is a Channel, not a Router"),
        ((APP, "--router", "tests.apps.broken:router", "--check"), 2, "RuntimeError: this module is broken on purpose"),
        ((APP, "--router", "tests.apps.svc", "--check"), 2, "is not module:attribute"),
        ((APP, "--concurrency", "0"), 2, "Invalid value for '--concurrency'"),
        ((APP, "--pool", "forks"), 2, "Invalid value for '--pool'"),
        ((APP, "--log-level", "loud"), 2, "Invalid value for '--log-level'"),
    ],
)
def test_bad_options_and_failed_checks_are_one_line(
    broker_env: dict[str, str], args: tuple[str, ...], code: int, message: str
) -> None:
    env = {**broker_env, "REDIS_URL": "redis://127.0.0.1:1/0"} if code == 1 else broker_env
    done = run_cli(env, WORKER, *args)
    assert done.returncode == code
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1


def test_the_table_lists_live_processes_and_forgets_a_killed_one(
    start_worker: Callable[..., WorkerProcess], caller: FlaskRedisSingle, broker_env: dict[str, str]
) -> None:
    worker = start_worker("--router", "tests.apps.svc:backend", "--heartbeat", "0.2")

    def table() -> str:
        done = run_cli(broker_env, sys.executable, "-m", "flask", "--app", APP, "redis", "workers")
        assert done.returncode == 0, done.stderr
        return done.stdout

    listed = table()
    assert listed.splitlines()[0].split() == ["ROLE", "HOST", "PID", "UP", "HANDLED", "FAILED", "HANDLERS", "COMMANDS"]
    (row,) = [line.split() for line in listed.splitlines() if str(worker.pid) in line]
    assert row[0] == "worker"
    assert "math.add" in row[6]
    assert listed.splitlines()[-1].startswith("1 live process(es) with the prefix ")
    worker.process.kill()
    worker.finish()
    wait_until(lambda: str(worker.pid) not in table(), timeout=10)  # its heartbeat expired
    started = time.monotonic()
    with pytest.raises(NoResponders):
        caller.broker.request(add, AddIn(a=1, b=1), timeout=10)
    assert time.monotonic() - started < 1.0


def test_flask_redis_worker_command(start_worker: Callable[..., WorkerProcess], caller: FlaskRedisSingle) -> None:
    flask = (sys.executable, "-m", "flask", "--app", APP, "redis", "worker")
    worker = start_worker("--router", "tests.apps.svc:backend", command=flask)
    assert caller.broker.request(add, AddIn(a=5, b=5), timeout=5).sum == 10
    worker.process.send_signal(signal.SIGTERM)
    assert worker.finish() == 0


def test_requests_still_queued_at_shutdown_are_refused_at_once(
    start_worker: Callable[..., WorkerProcess], caller: FlaskRedisSingle
) -> None:
    worker = start_worker("--router", "tests.apps.svc:backend", "--concurrency", "1", "--grace", "20")
    session = caller.getRedis()
    results: list[Any] = []

    def call() -> None:
        started = time.monotonic()
        try:
            results.append(caller.broker.request(gate, Gate(key="gate:queued"), timeout=15))
        except Exception as exc:
            results.append(exc)
        results.append(time.monotonic() - started)

    callers = [threading.Thread(target=call) for _ in range(3)]
    for thread in callers:
        thread.start()
    wait_until(lambda: len(handlers_at_gate(session)) == 1)  # one runs, two wait in the worker's queue
    wait_until(lambda: caller.broker.health().waiting_calls == 3)  # one on its reply list, two on the inbox
    worker.process.send_signal(signal.SIGTERM)
    wait_until(lambda: len(results) == 4)  # the two queued ones ended, long before their 15 s
    refused = [result for result in results if isinstance(result, Exception)]
    assert [type(error) for error in refused] == [NoResponders, NoResponders]  # refused, and nobody else serves
    session.rpush("gate:queued", 1)  # the one in flight finishes
    for thread in callers:
        thread.join(20)
    assert sum(isinstance(result, AddOut) for result in results) == 1
    assert worker.finish() == 0


@pytest.mark.parametrize(
    ("argv", "gevent"),
    [
        (["app", "--pool", "gevent"], True),
        (["app", "--pool=gevent"], True),
        (["app", "-P", "gevent"], True),
        (["app", "-Pgevent"], True),
        (["app", "-P", "gevent", "--pool", "threads"], False),
        (["app", "--pool", "threads", "-Pgevent"], True),
        (["app"], False),
        (["app", "--", "-P", "gevent"], False),
    ],
)
def test_the_launcher_sees_the_pool_option_as_click_does(argv: list[str], gevent: bool) -> None:
    from flask_multi_redis.worker.launch import wants_gevent

    assert wants_gevent(argv) is gevent
