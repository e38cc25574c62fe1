"""The worker and its operating tools at their edges: a drain with a handler on the listener's thread, readiness
while draining, --grace 0, handlers that raise BaseExceptions, and the CLI's call and workers commands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
import redis
from flask import Flask

from examples.local_redis import free_port
from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Channel, RemoteError, Router, names
from flask_multi_redis.broker.envelope import Sender
from flask_multi_redis.broker.registry import ProcessInfo

from .apps import svc
from .processes import APP, WorkerProcess, probe, run_cli
from .waiting import wait_until

ROUTER = "tests.test_worker_edges:edges"

edges = Router()
#: A handler that is quick (it says on which thread it ran) unless told to hold at a gate (a Redis list).
maybe = Channel("edges.maybe", request=dict, reply=dict)


@edges.handler(maybe)
def maybe_hold(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("raise") == "exit":
        raise SystemExit(3)  # sys.exit() in a library the handler calls, argparse's error()
    if message.get("raise") == "gevent-timeout":
        import gevent

        with gevent.Timeout(0.01):  # gevent.Timeout is a BaseException
            gevent.sleep(1)
    key = message.get("hold")
    if key and svc.redis.getRedis().blpop([key], timeout=float(message.get("timeout", 30))) is None:
        raise TimeoutError("the gate stayed closed")
    return {"thread": threading.current_thread().name}


def gate_clients(session: redis.Redis) -> list[dict[str, Any]]:
    """Connections in BLPOP that the broker did not open (it names its own): the handlers' at a gate."""
    return [client for client in session.client_list() if client.get("cmd") == "blpop" and not client.get("name")]


def runs_inline(caller: FlaskRedisSingle) -> bool:
    """Whether the worker ran ``maybe`` on its listener's thread (it answers with its thread's name)."""
    return bool(caller.broker.request(maybe, {}, timeout=5)["thread"].startswith("flask-redis-listener"))


def held_call(caller: FlaskRedisSingle, gate: str) -> tuple[threading.Thread, list[object]]:
    """A call to ``maybe`` whose handler holds until ``gate`` gets an element, on a thread of its own; its result
    (or exception) lands in the list."""
    results: list[object] = []

    def call() -> None:
        try:
            results.append(caller.broker.request(maybe, {"hold": gate}, timeout=25))
        except Exception as exc:
            results.append(exc)

    holder = threading.Thread(target=call)
    holder.start()
    return holder, results


def test_a_handler_running_on_the_listener_thread_gets_the_grace_period(
    start_worker: Callable[..., WorkerProcess], caller: FlaskRedisSingle
) -> None:
    """README: on SIGTERM the worker lets the handlers in flight finish within the grace period and exits 0 (1 if
    some did not finish). A handler that has been quick so far runs on the listener's thread (the default
    inline_below): the drain waits for it as for the pool's, rather than letting the broker's stop cut it off."""
    worker = start_worker("--router", ROUTER, "--grace", "30")
    session = caller.getRedis()

    wait_until(lambda: runs_inline(caller), timeout=10)  # quick so far: it runs on the listener's thread
    holder, results = held_call(caller, "edges:inline")
    try:
        wait_until(lambda: len(gate_clients(session)) == 1)
        worker.process.send_signal(signal.SIGTERM)
        worker.wait_for_log("stopping")
        try:
            code: int | None = worker.process.wait(10)  # well within the 30 s grace
        except subprocess.TimeoutExpired:
            code = None
        assert code is None, f"exited {code} with a handler in flight, 10 s into a 30 s grace:\n{worker.log}"
    finally:
        session.rpush("edges:inline", 1)
        holder.join(30)
    assert [type(result) for result in results] == [dict], results
    assert worker.finish() == 0


def test_a_draining_worker_is_not_ready(start_worker: Callable[..., WorkerProcess], caller: FlaskRedisSingle) -> None:
    """README: ready means connected, subscribed, and registered when it serves. Once SIGTERM is received the
    worker leaves the registry and answers every request ShuttingDown, for up to --grace seconds: not ready."""
    port = free_port()
    worker = start_worker("--router", ROUTER, "--grace", "30", "--health-port", str(port), "--health-host", "127.0.0.1")
    worker.wait_for_log(f"health on http://127.0.0.1:{port}/ready")
    ready = f"http://127.0.0.1:{port}/ready"
    wait_until(lambda: probe(ready)[0] == 200)
    session = caller.getRedis()
    holder, _ = held_call(caller, "edges:ready")
    try:
        wait_until(lambda: len(gate_clients(session)) == 1)
        worker.process.send_signal(signal.SIGTERM)
        worker.wait_for_log("stopping")
        wait_until(lambda: not caller.broker.responders(maybe))  # it has left the registry
        status, report = probe(ready)
        assert (status, report["ready"]) == (503, False), report
    finally:
        session.rpush("edges:ready", 1)
        holder.join(30)
    assert worker.finish() == 0


short = FlaskRedisSingle()
short.broker.configure(max_timeout=10)  # an app whose calls may not wait longer than 10 s


def create_short_app() -> Flask:
    app = Flask("short")
    app.config["REDIS"] = {"URL": os.environ["REDIS_URL"], "PREFIX": os.environ["REDIS_PREFIX"]}
    short.init_app(app)
    return app


def test_call_with_a_timeout_above_max_timeout_is_a_clear_error(broker_env: dict[str, str]) -> None:
    """`flask redis call --timeout` above the app's max_timeout is a one-line error naming --timeout, not the
    broker's ValueError and a traceback."""
    flask = (sys.executable, "-m", "flask", "--app", "tests.test_worker_edges:create_short_app()", "redis")
    done = run_cli(broker_env, *flask, "call", "edges.nobody", "{}", "--timeout", "30")
    assert done.returncode in (1, 2), done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "timeout" in done.stderr.strip().splitlines()[-1]


def test_workers_does_not_say_more_when_the_limit_is_exactly_met(broker_env: dict[str, str]) -> None:
    """`flask redis workers --limit N` with exactly N live processes says there are no more (the registry is read
    500 keys at a time: a page that brings the count to the limit is no sign that more are left)."""
    prefix = broker_env["REDIS_PREFIX"]
    raw = redis.Redis.from_url(broker_env["REDIS_URL"])
    try:
        with raw.pipeline(transaction=False) as pipe:
            for pid in range(1, 501):
                sender = Sender(id=f"edges-{pid}", host="edges", pid=pid, role="worker")
                info = ProcessInfo(sender, f"{prefix}:inbox:{sender.id}", (), (), time.time(), 0, 0)
                pipe.set(names.process_key(prefix, sender.id), orjson.dumps(info.as_json()), px=120_000)
            pipe.execute()
        flask = (sys.executable, "-m", "flask", "--app", APP, "redis", "workers", "--limit", "500")
        done = run_cli(broker_env, *flask, "--json")
        assert done.returncode == 0, done.stderr
        listed = orjson.loads(done.stdout)
        assert len(listed["processes"]) == 500
        assert listed["more"] is False, "500 live processes, all listed, and yet 'more'"
    finally:
        raw.close()


def test_grace_zero_with_nothing_in_flight_exits_0(
    start_worker: Callable[..., WorkerProcess], caller: FlaskRedisSingle
) -> None:
    """`--grace 0` with no handler in flight exits 0: the pool's idle threads, which may not have read their stop
    markers yet, ran nothing."""
    worker = start_worker("--router", ROUTER, "--grace", "0")
    assert caller.broker.request(maybe, {}, timeout=5)["thread"].startswith("flask-redis-handler")  # the pool ran
    worker.process.send_signal(signal.SIGTERM)
    assert worker.finish() == 0, worker.log
    assert "still running" not in worker.log


def test_health_counts_a_handler_running_on_the_listener_thread(
    start_worker: Callable[..., WorkerProcess], caller: FlaskRedisSingle
) -> None:
    """/ready's handlers_in_flight (and flask_redis_handlers_in_flight) is handlers running or queued, the one
    running on the listener's thread (inline) included."""
    port = free_port()
    worker = start_worker("--router", ROUTER, "--health-port", str(port), "--health-host", "127.0.0.1")
    worker.wait_for_log(f"health on http://127.0.0.1:{port}/ready")
    session = caller.getRedis()

    wait_until(lambda: runs_inline(caller), timeout=10)
    holder = threading.Thread(target=lambda: caller.broker.request(maybe, {"hold": "edges:count"}, timeout=15))
    holder.start()
    try:
        wait_until(lambda: len(gate_clients(session)) == 1)
        _, report = probe(f"http://127.0.0.1:{port}/ready")
        assert report["handlers_in_flight"] == 1, report
    finally:
        session.rpush("edges:count", 1)
        holder.join(20)


@pytest.mark.parametrize(("pool", "how"), [("threads", "exit"), ("gevent", "gevent-timeout")])
def test_a_handler_raising_a_base_exception_does_not_wedge_the_worker(
    start_worker: Callable[..., WorkerProcess], caller: FlaskRedisSingle, pool: str, how: str
) -> None:
    """A handler that raises SystemExit, or an uncaught gevent.Timeout (BaseExceptions), is answered as a failure,
    and the thread (greenlet) that ran it serves the next request."""
    worker = start_worker("--router", ROUTER, "--concurrency", "1", "-P", pool)
    outcomes: list[object] = []
    for message in ({"raise": how}, {}):
        try:
            outcomes.append(caller.broker.request(maybe, message, timeout=3))
        except Exception as exc:
            outcomes.append(exc)
    assert isinstance(outcomes[0], RemoteError), outcomes  # not RequestTimeout: the caller is told
    assert isinstance(outcomes[1], dict), outcomes  # the worker still serves
    worker.process.send_signal(signal.SIGTERM)
    assert worker.finish() == 0
