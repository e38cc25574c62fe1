"""Faults in the middle of traffic: killed pub/sub connections and a restarted server. Each test has its own
redis-server, so it may kill and restart it."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from subprocess import Popen
from typing import Any

import pytest
import redis

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import BrokerError

from .apps.svc import AddIn, AddOut, add, whoami
from .conftest import ServerFactory
from .gates import call_at_gate
from .servers import RedisServer
from .waiting import wait_until

Spawn = Callable[[], "Popen[str]"]


@pytest.fixture
def broker_server(redis_server_factory: ServerFactory) -> RedisServer:
    return redis_server_factory()


def blocked_clients(admin: redis.Redis, name: str, command: str = "blpop") -> list[dict[str, Any]]:
    """The connections named ``name`` (the broker names its own) that are blocked in ``command``."""
    return [client for client in admin.client_list() if client.get("cmd") == command and client.get("name") == name]


def test_replies_survive_killed_caller_connections(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    """Two calls in flight: one waits on its reply list (BLMOVE), the other on the process's inbox (pub/sub)."""
    spawn_backend()
    admin = caller.getRedis()
    runtime = caller.broker.start(timeout=5)
    calls, results = call_at_gate(caller, "gate:kill", 2)
    wait_until(lambda: len(blocked_clients(admin, "")) == 2)  # both handlers hold their request at the gate
    own = f"flask-redis:{runtime.sender.id}"
    wait_until(lambda: len(blocked_clients(admin, own, "blmove")) == 1 and len(runtime._calls) == 1)
    assert admin.client_kill_filter(_type="pubsub") == 2  # the caller's inbox and the server's listener
    (waiter,) = blocked_clients(admin, own, "blmove")
    assert admin.client_kill_filter(_id=waiter["id"]) == 1  # and the connection of the call waiting on its list
    admin.rpush("gate:kill", 1, 2)  # the handlers answer while the caller may still be reconnecting
    for call in calls:
        call.join(15)
    assert [type(result) for result in results] == [AddOut, AddOut]
    assert caller.broker.health().listener.reconnects >= 1


def test_typed_errors_only_while_pubsub_connections_are_killed(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    pids = {spawn_backend().pid for _ in range(2)}
    admin = caller.getRedis()
    outcomes = _traffic(caller, lambda: [admin.client_kill_filter(_type="pubsub") for _ in range(3)])
    assert outcomes["ok"] > 0
    assert set(outcomes) <= {"ok", "NoResponders", "RequestTimeout", "BrokerUnavailable"}, outcomes
    wait_until(
        lambda: {r.value.pid for r in caller.broker.broadcast(whoami, None, gather=True, timeout=2) if r.value} == pids
    )


def _traffic(caller: FlaskRedisSingle, disrupt: Callable[[], object], calls: int = 200) -> Counter[str]:
    """Requests from 4 threads while ``disrupt`` runs once; how each call ended, by outcome."""
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def call_many() -> None:
        for i in range(calls // 4):
            try:
                caller.broker.request(add, AddIn(a=i, b=0), timeout=2)
                outcome = "ok"
            except BrokerError as exc:
                outcome = type(exc).__name__
            with lock:
                outcomes[outcome] += 1

    threads = [threading.Thread(target=call_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    wait_until(lambda: outcomes["ok"] >= 10)
    ended_before = sum(outcomes.values())
    disrupt()
    for thread in threads:
        thread.join(60)
    assert ended_before < calls  # the fault came in the middle of the traffic
    assert sum(outcomes.values()) == calls  # every call ended, none hung
    return outcomes


def test_typed_errors_only_while_the_server_restarts(
    spawn_backend: Spawn, caller: FlaskRedisSingle, broker_server: RedisServer
) -> None:
    pids = {spawn_backend().pid for _ in range(2)}

    def restart() -> None:
        broker_server.stop()
        broker_server.start()

    outcomes = _traffic(caller, restart)
    assert outcomes["ok"] > 0
    assert set(outcomes) <= {"ok", "NoResponders", "RequestTimeout", "BrokerUnavailable"}, outcomes
    wait_until(lambda: _answering(caller) == pids, timeout=20)
    assert caller.broker.request(add, AddIn(a=1, b=2), timeout=5).sum == 3


def _answering(caller: FlaskRedisSingle) -> set[int]:
    return {reply.value.pid for reply in caller.broker.broadcast(whoami, None, gather=True, timeout=2) if reply.value}


def test_the_lanes_reconnect_after_their_connections_were_killed(
    spawn_backend: Spawn, caller: FlaskRedisSingle
) -> None:
    """Connections closed while idle (a restart, CLIENT KILL, a server timeout) are noticed before use."""
    spawn_backend()
    assert caller.broker.request(add, AddIn(a=1, b=1), timeout=5).sum == 2
    admin = caller.getRedis()
    ours = [c for c in admin.client_list() if c.get("name", "").startswith("flask-redis:") and c["flags"] != "P"]
    assert ours  # the caller's and the server's lanes
    for client in ours:
        admin.client_kill_filter(_id=client["id"])
    for i in range(5):
        assert caller.broker.request(add, AddIn(a=i, b=1), timeout=5).sum == i + 1
