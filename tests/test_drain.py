"""A clean stop loses nothing: every call that reaches a stopping process is answered, or refused so that its
caller goes elsewhere (or learns at once that nobody serves), and nobody waits out a timeout."""

from __future__ import annotations

import collections
import contextlib
import signal
import threading
import time
from collections.abc import Callable

import pytest

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import NoResponders, ShuttingDown

from .apps.svc import AddIn, whoami
from .apps.svc import add as add_channel
from .faults import TABLE, Load, calls_of
from .processes import Served, WorkerProcess
from .waiting import wait_until

pytestmark = pytest.mark.faults

TIMEOUT = 3.0


@pytest.mark.parametrize("inline_below", [0.0002, 0.0], ids=["inline", "pool"])
def test_a_worker_stopped_under_load_loses_no_call(
    start_worker: Callable[..., WorkerProcess],
    caller: FlaskRedisSingle,
    broker_env: dict[str, str],
    inline_below: float,
) -> None:
    broker_env["SVC_INLINE_BELOW"] = str(inline_below)  # the worker's setting (start_worker passes broker_env)
    worker = start_worker("--router", "tests.apps.svc:backend")
    load = Load(calls_of(caller.broker, TIMEOUT), callers=16)
    wait_until(lambda: load.outcomes["ok"] > 200)
    worker.process.send_signal(signal.SIGTERM)
    assert worker.finish() == 0
    wait_until(lambda: load.outcomes["NoResponders"] > 50)  # nobody serves now: said at once, every time
    handler = "inline" if inline_below else "in the pool"
    row = TABLE.add(f"the only worker stopped (SIGTERM), handlers {handler}", load, None, clean=True)
    assert set(row.outcomes) == {"ok", "NoResponders"}, row  # no RequestTimeout: nothing was lost
    assert row.late == 0


def test_with_a_second_worker_the_calls_go_on(
    start_worker: Callable[..., WorkerProcess], caller: FlaskRedisSingle
) -> None:
    first = start_worker("--router", "tests.apps.svc:backend")
    second = start_worker("--router", "tests.apps.svc:backend")
    served: collections.Counter[int] = collections.Counter()

    def call(i: int) -> float:
        served[caller.broker.request(add_channel, AddIn(a=i, b=1), timeout=TIMEOUT).pid] += 1
        return TIMEOUT

    load = Load(call, callers=16)
    wait_until(lambda: served[first.pid] > 100 and served[second.pid] > 100)
    first.process.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    assert first.finish() == 0
    after = served[second.pid]
    wait_until(lambda: served[second.pid] > after + 200)
    row = TABLE.add("one of two workers stopped (SIGTERM)", load, stopped, clean=True)
    assert set(row.outcomes) == {"ok"}, row  # those refused by the first went to the second
    assert row.late == 0


def test_recycled_gunicorn_workers_answer_every_gather_they_receive(
    serve_web: Callable[..., Served], caller: FlaskRedisSingle
) -> None:
    """gunicorn --max-requests recycles its workers while gathers run: a worker that stops answers what it
    received (or refuses it as ShuttingDown) before it goes; no gather waits out its timeout for it."""
    web = serve_web(
        "gunicorn", "-w", "2", "--max-requests", "10", "-b", "127.0.0.1:{port}", "tests.apps.svc:create_app()"
    )
    wait_until(lambda: len(caller.broker.broadcast(whoami, None, gather=True, timeout=2)) == 2, timeout=20)
    recycled = threading.Event()
    pids: set[int] = set()

    def browse() -> None:
        while not recycled.is_set():
            with contextlib.suppress(OSError):  # a worker that was just recycled: the next try reaches another
                pids.add(int(web.get("/pid")["pid"]))  # type: ignore[call-overload]

    browser = threading.Thread(target=browse)
    browser.start()
    started = time.monotonic()
    load = Load(calls_of(caller.broker, TIMEOUT, gather_every=1), callers=2)
    try:
        wait_until(lambda: len(pids) >= 6, timeout=20)  # at least four recycled workers
    finally:
        recycled.set()
        browser.join(10)
    row = TABLE.add("gunicorn --max-requests recycling its workers, under gathers", load, started, clean=True)
    assert row.outcomes.get("ok", 0) > 0
    # no RequestTimeout: nothing left unanswered (with both workers being replaced, a gather may reach nobody)
    assert set(row.outcomes) <= {"ok", ShuttingDown.__name__, "EmptyGather"}, row
    assert row.late == 0


def test_no_responders_after_the_last_worker_stopped(
    start_worker: Callable[..., WorkerProcess], caller: FlaskRedisSingle
) -> None:
    worker = start_worker("--router", "tests.apps.svc:backend")
    assert caller.broker.request(add_channel, AddIn(a=1, b=1), timeout=TIMEOUT).pid == worker.pid
    worker.process.send_signal(signal.SIGTERM)
    assert worker.finish() == 0
    with pytest.raises(NoResponders):
        caller.broker.request(add_channel, AddIn(a=1, b=1), timeout=TIMEOUT)
