"""The fault suite: a steady load of requests and gathers through each fault, against real processes.

In every scenario no call ends more than a second after its deadline, every call that does not get its reply
raises a typed error, and calls succeed again once the fault is over. Each adds its row to the fault table
(tests/faults.py; ``make faults`` writes docs/faults.md).
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable, Iterator

import orjson
import pytest

from flask_multi_redis import FlaskRedisSingle

from .apps.svc import add
from .conftest import ServerFactory
from .faults import TABLE, Load, calls_of
from .processes import WorkerProcess
from .proxy import Proxy, proxy_to
from .servers import RedisServer
from .waiting import wait_until

pytestmark = pytest.mark.faults

TIMEOUT = 2.0
#: What a call may raise while Redis, or the network, misbehaves.
TYPED = {
    "ok",
    "BrokerUnavailable",
    "RequestTimeout",
    "NoResponders",
    "ShuttingDown",
    "Overloaded",
    "RemoteBrokerUnavailable",
    "EmptyGather",  # while the worker itself is away (a restart, a kill, a pause), not otherwise
}


@pytest.fixture
def broker_server(redis_server_factory: ServerFactory) -> RedisServer:
    """A server of the test's own: it is stopped, killed, paused and filled."""
    return redis_server_factory()


@pytest.fixture
def load_on(start_worker: Callable[..., WorkerProcess], caller: FlaskRedisSingle) -> Iterator[Callable[..., Load]]:
    """A worker, and a load of 8 callers (every fourth gathers) once calls succeed."""
    loads: list[Load] = []

    def start(callers: int = 8, pause: float = 0.0) -> Load:
        start_worker("--router", "tests.apps.svc:backend")
        load = Load(calls_of(caller.broker, TIMEOUT, gather_every=4), callers=callers, pause=pause)
        loads.append(load)
        wait_until(lambda: load.outcomes["ok"] > 100)
        return load

    yield start
    for load in loads:
        load.stop()


def failures(load: Load) -> int:
    return sum(count for outcome, count in load.outcomes.items() if outcome != "ok")


def check(scenario: str, load: Load, fault_ended: float, *, allowed: set[str] = TYPED) -> None:
    """Calls succeed again after the fault; then the row, and its zeros."""
    wait_until(lambda: load.ok_since(fault_ended) > 100, timeout=30)
    row = TABLE.add(scenario, load, fault_ended)
    assert row.late == 0, row
    assert set(row.outcomes) <= allowed, (row.outcomes, row.examples)


def test_redis_restarted(load_on: Callable[..., Load], broker_server: RedisServer) -> None:
    load = load_on()
    broker_server.stop()
    wait_until(lambda: failures(load) >= 8)
    broker_server.start()
    check("redis-server restarted (its data lost)", load, time.monotonic())


def test_redis_killed(load_on: Callable[..., Load], broker_server: RedisServer) -> None:
    load = load_on()
    broker_server.kill(sig=signal.SIGKILL)
    wait_until(lambda: failures(load) >= 8)
    broker_server.start()
    check("redis-server killed (SIGKILL), then started again", load, time.monotonic())


@pytest.mark.parametrize("kind", ["pubsub", "normal"])
def test_client_kill(load_on: Callable[..., Load], broker_server: RedisServer, kind: str) -> None:
    """Every connection of the kind, the worker's and the caller's, killed at once, three times."""
    load = load_on()
    admin = broker_server.admin()
    for _ in range(3):
        admin.client_kill_filter(_type=kind)
        killed = time.monotonic()
        wait_until(lambda killed=killed: load.ok_since(killed) > 20)  # type: ignore[misc]  # back to work first
    ended = time.monotonic()
    allowed = {"ok", "BrokerUnavailable", "RequestTimeout"}  # never NoResponders: the worker is alive
    check(f"CLIENT KILL TYPE {kind}, three times", load, ended, allowed=allowed)


def test_client_pause(load_on: Callable[..., Load], broker_server: RedisServer) -> None:
    load = load_on()
    broker_server.admin().execute_command("CLIENT", "PAUSE", 3000, "ALL")  # type: ignore[no-untyped-call]
    wait_until(lambda: failures(load) >= 4, timeout=10)
    check("CLIENT PAUSE 3000 ALL (longer than the calls' 2 s)", load, time.monotonic())


def test_debug_sleep(load_on: Callable[..., Load], broker_server: RedisServer) -> None:
    load = load_on()
    started = time.monotonic()
    broker_server.admin().execute_command("DEBUG", "SLEEP", 3)  # type: ignore[no-untyped-call]  # blocks 3 s
    check("DEBUG SLEEP 3 (the server stalls)", load, started + 3)


@pytest.fixture
def proxy(broker_server: RedisServer) -> Iterator[Proxy]:
    with proxy_to(broker_server.host, broker_server.port) as proxy:
        yield proxy


def test_connections_dropped_by_the_network(
    start_worker: Callable[..., WorkerProcess], proxy: Proxy, broker_env: dict[str, str]
) -> None:
    start_worker("--router", "tests.apps.svc:backend")
    proxied = FlaskRedisSingle({"URL": proxy.url, "PREFIX": broker_env["REDIS_PREFIX"]})
    load = Load(calls_of(proxied.broker, TIMEOUT, gather_every=4), callers=8)
    try:
        wait_until(lambda: load.outcomes["ok"] > 100)
        for _ in range(3):
            proxy.drop()
            wait_until(lambda: proxy.connections >= 3)  # the caller's connections, made again
        check("every connection of the caller cut by the network (RST), three times", load, time.monotonic())
    finally:
        load.stop()
        proxied.broker.stop(timeout=2)


def test_the_worker_killed_with_requests_in_flight(
    start_worker: Callable[..., WorkerProcess], caller: FlaskRedisSingle
) -> None:
    worker = start_worker("--router", "tests.apps.svc:backend")
    load = Load(calls_of(caller.broker, TIMEOUT), callers=8)
    wait_until(lambda: load.outcomes["ok"] > 100)
    worker.process.kill()
    killed = time.monotonic()
    worker.finish()
    wait_until(lambda: load.outcomes["NoResponders"] > 20)
    second = start_worker("--router", "tests.apps.svc:backend")
    restarted = time.monotonic()
    wait_until(lambda: load.ok_since(restarted) > 100, timeout=30)
    row = TABLE.add("the only worker killed (SIGKILL) with requests in flight, another started", load, killed)
    assert row.late == 0, row
    assert set(row.outcomes) <= {"ok", "RequestTimeout", "NoResponders"}, row
    assert second.pid


def test_redis_out_of_memory(load_on: Callable[..., Load], broker_server: RedisServer) -> None:
    """maxmemory 1 with noeviction: every write refused for longer than the registry lives (6 s). Calls fail at
    once, typed, the whole time: none begun during it waits out its timeout, not even once the registry has
    expired. (A call already waiting on its reply list when memory runs out may: its answer cannot be stored.)
    Callers pause 10 ms after a failure, as a client does: calls that fail at once would flood the worker."""
    load = load_on(pause=0.01)
    admin = broker_server.admin()
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)
    began = time.monotonic()
    wait_until(lambda: time.monotonic() - began > 8 and failures(load) > 100, timeout=20)
    ended = time.monotonic()
    admin.config_set("maxmemory", 0)
    timed_out = [(start, end) for start, end, kind in load.ended if kind == "RequestTimeout" and began < start < ended]
    check("out of memory (maxmemory 1, noeviction) for 8 s", load, time.monotonic())
    assert timed_out == [], (len(timed_out), load.examples)


def test_garbage_on_every_channel_kind_and_reply_list(
    load_on: Callable[..., Load], broker_server: RedisServer, caller: FlaskRedisSingle, broker_env: dict[str, str]
) -> None:
    """10,000 messages of garbage (bytes, JSON of every type, envelopes with fields of every type) on the
    worker's inbox, the shared request channel, a command channel, the caller's inbox and reply lists: the
    listeners survive, count them dropped, the calls go on, and every key left expires in bounded time."""
    load = load_on()
    prefix = broker_env["REDIS_PREFIX"]
    admin = broker_server.admin()
    (worker,) = caller.broker.responders(add)
    channels = [
        worker.inbox,
        f"{prefix}:fmr:req:math.add",
        f"{prefix}:test.whoami",
        f"{prefix}:fmr:inbox:{caller.broker.health().sender.id}",
    ]
    rng = random.Random(12)
    pipe = admin.pipeline(transaction=False)
    for i in range(10_000):
        pipe.publish(channels[i % len(channels)], garbage(rng, i))
        if i % 10 == 0:
            pipe.rpush(f"{prefix}:fmr:reply:garbage-{i % 50}", garbage(rng, i))
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()
    ended = time.monotonic()
    check("10,000 garbage messages on every channel kind and reply list", load, ended)
    assert caller.broker.health().listener.running
    for key in admin.keys(f"{prefix}:*"):
        ttl = admin.pttl(key)
        name = key.decode() if isinstance(key, bytes) else str(key)
        if ":fmr:reply:garbage-" in name:
            continue  # pushed by the test itself, without a TTL: not ours
        assert 0 < ttl <= 301_000, (name, ttl)


def garbage(rng: random.Random, i: int) -> bytes:
    """Something that is not a valid envelope: of many shapes, some close to one."""
    shape = i % 6
    if shape == 0:
        return rng.randbytes(rng.randint(0, 64))
    if shape == 1:
        return orjson.dumps(rng.choice([None, 1, 1.5, "x", [], {}, [1, {"a": []}]]))
    values = [None, True, -1, 2**62, 1.5, "", "x" * 300, "a\nb", [], [1], {}, {"k": "v"}]
    envelope = {"v": 1, "kind": "request", "id": f"g{i}", "channel": "math.add", "body": {"a": 1, "b": 2}}
    field = rng.choice(["v", "kind", "id", "channel", "reply_to", "deadline", "sender", "headers", "body"])
    envelope[field] = rng.choice(values)
    if shape == 2:
        envelope["deadline"] = (1 << 53) - 1  # a far one, on a request it may run
    return orjson.dumps(envelope)
