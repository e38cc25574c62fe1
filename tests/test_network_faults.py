"""Deadlines that hold whatever the network does: through a proxy of the tests' own that stops forwarding
(a black hole: no FIN, no RST), every call ends with its reply or a typed error by its deadline and a second,
and calls succeed again once the network is back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import BrokerUnavailable, RequestTimeout
from flask_multi_redis.broker.pipeline import SLACK

from .apps.svc import AddIn, add, whoami
from .faults import TABLE, Load
from .processes import WorkerProcess
from .proxy import Proxy, proxy_to
from .servers import RedisServer
from .waiting import wait_until

pytestmark = pytest.mark.faults


@pytest.fixture
def proxy(broker_server: RedisServer) -> Iterator[Proxy]:
    with proxy_to(broker_server.host, broker_server.port) as proxy:
        yield proxy


@pytest.fixture
def proxied_caller(proxy: Proxy, broker_env: dict[str, str]) -> Iterator[FlaskRedisSingle]:
    """A caller whose every connection goes through the proxy (the worker's do not)."""
    ext = FlaskRedisSingle({"URL": proxy.url, "PREFIX": broker_env["REDIS_PREFIX"]})
    yield ext
    ext.broker.stop(timeout=2)


def test_calls_end_by_their_deadline_while_the_network_is_a_black_hole(
    start_worker: Callable[..., WorkerProcess], proxied_caller: FlaskRedisSingle, proxy: Proxy
) -> None:
    start_worker("--router", "tests.apps.svc:backend")
    broker = proxied_caller.broker
    broker.start(timeout=5)

    def call(i: int) -> float:
        broker.request(add, AddIn(a=i, b=1), timeout=1 + i % 3)
        return 1 + i % 3

    load = Load(call, callers=8)
    wait_until(lambda: load.outcomes["ok"] > 100)
    proxy.black_hole()
    wait_until(lambda: sum(n for kind, n in load.outcomes.items() if kind != "ok") >= 16, timeout=15)
    proxy.resume()
    resumed = time.monotonic()
    wait_until(lambda: load.ok_since(resumed) > 100, timeout=20)  # back to work
    row = TABLE.add("the network a black hole (no FIN, no RST), timeouts 1-3 s", load, resumed)
    assert row.late == 0, row  # none ended more than a second after its deadline
    assert set(row.outcomes) <= {"ok", RequestTimeout.__name__, BrokerUnavailable.__name__}, row


def test_a_lone_call_with_a_short_timeout_is_not_held_by_the_socket_timeout(
    start_worker: Callable[..., WorkerProcess], proxied_caller: FlaskRedisSingle, proxy: Proxy
) -> None:
    """The socket timeout is 5 s; a call of 1 s ends after about 1 s, on every path it may take."""
    start_worker("--router", "tests.apps.svc:backend")
    broker = proxied_caller.broker
    assert broker.request(add, AddIn(a=1, b=1), timeout=5).sum == 2
    proxy.black_hole()
    try:
        took, outcome = timed(lambda: broker.request(add, AddIn(a=1, b=1), timeout=1))
        assert isinstance(outcome, (RequestTimeout, BrokerUnavailable)), outcome
        assert took < 2.0
        took, outcome = timed(lambda: broker.broadcast(whoami, None, gather=True, timeout=1))
        if isinstance(outcome, list):  # a gather reports who did not answer, rather than raise
            assert [reply.ok for reply in outcome] == [False] * len(outcome)
        else:
            assert isinstance(outcome, BrokerUnavailable), outcome
        assert took < 2.0
    finally:
        proxy.resume()


def timed(call: Callable[[], object]) -> tuple[float, object]:
    """How long ``call`` took, and what it returned or raised."""
    started = time.monotonic()
    try:
        outcome = call()
    except Exception as exc:
        outcome = exc
    return time.monotonic() - started, outcome


def test_the_listener_notices_a_silent_peer_and_comes_back(proxied_caller: FlaskRedisSingle, proxy: Proxy) -> None:
    """No FIN, no RST: the listener finds out by its PING (silence 5 s, answer within 2 s), reconnects, and
    subscribes again once the network is back."""
    broker = proxied_caller.broker
    broker.start(timeout=5)
    assert broker.health().listener.connected
    proxy.black_hole()
    started = time.monotonic()
    wait_until(lambda: not broker.health().listener.connected, timeout=15)
    noticed = time.monotonic() - started
    proxy.resume()
    wait_until(lambda: broker.health().listener.connected, timeout=20)
    assert noticed < 5 + 2 + 1
    assert broker.health().listener.reconnects >= 1


def test_stop_ends_by_its_timeout_while_the_network_is_a_black_hole(
    proxied_caller: FlaskRedisSingle, proxy: Proxy
) -> None:
    """A serving process stops with Redis out of reach: leaving the registry, deleting finished reply lists,
    unsubscribing and closing all end by the stop's timeout and SLACK, not a socket timeout (5 s) each."""
    broker = proxied_caller.broker
    broker.handler(whoami)(lambda _: None)
    broker.start(timeout=5)
    proxy.black_hole()
    try:
        took, stopped = timed(lambda: broker.stop(timeout=1))
        assert stopped is False  # the listener could not hear Redis confirm its UNSUBSCRIBE
        assert took < 1 + SLACK + 0.5  # and scheduling
    finally:
        proxy.resume()
