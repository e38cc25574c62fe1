"""The broker's clean stop and its handlers' failures: calls on the inbox answered during a stop, queued requests
refused, SystemExit and unprintable exceptions answered, an infinite stop timeout, against real Redis."""

from __future__ import annotations

import math
import subprocess
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Channel, RequestTimeout

from .apps.svc import AddOut
from .gates import call_at_gate
from .sessions import close_sessions
from .waiting import wait_until

Spawn = Callable[[], subprocess.Popen[str]]


def blocked_on(admin: redis.Redis, command: str) -> int:
    """Connections of the test's server blocked in ``command`` (BLPOP of the gate handler, BLMOVE of a caller)."""
    return sum(1 for client in admin.client_list() if client.get("cmd") == command)


def test_stop_leaves_a_call_waiting_on_its_inbox_its_reply(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    """README: ``stop(timeout)`` lets a call still waiting for its reply finish within the timeout. Of two calls
    in flight, one waits on its reply list (BLMOVE) and the other on the inbox; both replies are sent while stop()
    waits, and both calls get them (stop() listens on until the inbox calls have ended)."""
    spawn_backend()
    runtime = caller.broker.start(timeout=5)
    admin = caller.getRedis()
    calls, results = call_at_gate(caller, "gate:edges-stop", 2, timeout=8)
    wait_until(lambda: blocked_on(admin, "blpop") == 2)  # both handlers run in the backend, at the gate
    stopped: list[bool] = []
    stopper = threading.Thread(target=lambda: stopped.append(caller.broker.stop(timeout=6)))
    began = time.monotonic()
    stopper.start()
    try:
        wait_until(lambda: runtime.responder.draining, timeout=5)  # stop() has begun: it waits for the calls
        admin.rpush("gate:edges-stop", 1, 1)  # both handlers answer now, well within stop's timeout
        for thread in calls:
            thread.join(12)
        took = time.monotonic() - began
    finally:
        admin.rpush("gate:edges-stop", 1, 1)
        stopper.join(12)
    assert [type(result) for result in results] == [AddOut, AddOut], results
    assert took < 6 + 1.5, took


held = Channel("stop.held", reply=str)


@pytest.fixture
def served(broker_env: dict[str, str]) -> Iterator[FlaskRedisSingle]:
    """A process that serves ``held`` with one handler at a time, every run in the pool."""
    ext = FlaskRedisSingle({"URL": broker_env["REDIS_URL"], "PREFIX": broker_env["REDIS_PREFIX"]})
    ext.broker.concurrency = 1
    ext.broker.inline_below = 0
    yield ext
    ext.broker.stop(timeout=1)
    close_sessions(ext)


def test_stop_refuses_a_request_queued_behind_a_busy_handler(
    served: FlaskRedisSingle, caller: FlaskRedisSingle
) -> None:
    """A request that waits in the handler queue was accepted and never started: a clean stop refuses it at once
    (ShuttingDown, and then the caller's NoResponders), as the worker's drain does, while the refusal can still
    go out, instead of leaving it behind a handler that outlives the stop."""
    release, running = threading.Event(), threading.Event()

    @served.broker.handler(held)
    def hold(_: object) -> str:
        running.set()
        release.wait(20)
        return "done"

    served.broker.start(timeout=5)
    caller.broker.start(timeout=5)
    results: dict[str, object] = {}
    ended: dict[str, float] = {}

    def call(name: str) -> None:
        try:
            results[name] = caller.broker.request(held, None, timeout=10)
        except Exception as exc:
            results[name] = exc
        ended[name] = time.monotonic()

    first = threading.Thread(target=call, args=("running",))
    first.start()
    assert running.wait(5)
    second = threading.Thread(target=call, args=("queued",))
    second.start()
    try:
        wait_until(lambda: served.broker.health().in_flight == 2)  # the second waits in the queue
        began = time.monotonic()
        assert served.broker.stop(timeout=1) is False  # the running handler outlives it
        second.join(15)
    finally:
        release.set()
        first.join(15)
        second.join(15)
    queued = results["queued"]
    assert not isinstance(queued, RequestTimeout), queued  # it was refused, or sent elsewhere: never a silent loss
    assert ended["queued"] - began < 1 + 1.5, ended["queued"] - began


leaves = Channel("stop.leaves", reply=str)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the pool thread's death
def test_a_handler_that_raises_system_exit_is_reported_and_does_not_wedge_the_pool(
    served: FlaskRedisSingle, caller: FlaskRedisSingle
) -> None:
    """README: a handler that raises answers with a RemoteError, and neither stops the listener. SystemExit too
    (``sys.exit()`` in library code): the caller is answered, and the pool's only thread serves the next request."""

    @served.broker.handler(leaves)
    def leave(_: object) -> str:
        raise SystemExit("bye")

    @served.broker.handler(held)
    def answer(_: object) -> str:
        return "served"

    served.broker.start(timeout=5)
    caller.broker.start(timeout=5)
    outcomes: list[object] = []
    for channel in (leaves, held):
        began = time.monotonic()
        try:
            outcomes.append(caller.broker.request(channel, None, timeout=3))
        except Exception as exc:
            outcomes.append(exc)
        outcomes.append(round(time.monotonic() - began, 1))
    failure, _, reply, _ = outcomes
    assert not isinstance(failure, RequestTimeout), outcomes  # a RemoteError naming SystemExit
    assert reply == "served", outcomes  # the pool still runs handlers


def test_stop_without_a_time_limit_stops(served: FlaskRedisSingle, caller: FlaskRedisSingle) -> None:
    """``stop(timeout=math.inf)`` waits as long as it takes, and stops (Thread.join would overflow on inf); a
    negative or NaN timeout is refused before anything is changed."""

    @served.broker.handler(held)
    def answer(_: object) -> str:
        return "served"

    runtime = served.broker.start(timeout=5)
    assert caller.broker.request(held, None, timeout=5) == "served"
    try:
        outcome: object = served.broker.stop(timeout=math.inf)
    except Exception as exc:
        outcome = exc
    listening = runtime.listener.running
    runtime.stop(timeout=2)  # clean up whatever was left running
    assert outcome is True or isinstance(outcome, ValueError), repr(outcome)
    assert not listening or isinstance(outcome, ValueError), "the listener of a stopped runtime still runs"


class Unprintable(Exception):
    """An exception whose text cannot be made (a ``__str__`` that fails, as some libraries' do)."""

    def __str__(self) -> str:
        raise RuntimeError("no text for this one")


unprintable = Channel("stop.unprintable", reply=str)


def test_a_handler_whose_exception_has_no_text_is_still_answered(
    served: FlaskRedisSingle, caller: FlaskRedisSingle
) -> None:
    """A handler whose exception's ``str()`` raises is answered with a RemoteError all the same."""

    @served.broker.handler(unprintable)
    def fail(_: object) -> str:
        raise Unprintable

    served.broker.start(timeout=5)
    caller.broker.start(timeout=5)
    began = time.monotonic()
    try:
        outcome: object = caller.broker.request(unprintable, None, timeout=3)
    except Exception as exc:
        outcome = exc
    assert not isinstance(outcome, RequestTimeout), (outcome, time.monotonic() - began)  # a RemoteError
