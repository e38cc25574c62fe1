"""Faults in the middle of traffic: killed pub/sub connections and a restarted server. Each test has its own
redis-server, so it may kill and restart it."""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from subprocess import Popen
from typing import Any

import pytest
import redis

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import BrokerError, BrokerUnavailable, RequestTimeout

from .apps.svc import AddIn, AddOut, Gate, add, gate, stats, whoami
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
    wait_until(lambda: len(blocked_clients(admin, own, "blmove")) == 1 and caller.broker.health().waiting_calls == 2)
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


class Interrupted(Exception):
    """Raised by a signal handler in the middle of a call, as a worker timeout would."""


def test_a_call_interrupted_while_waiting_leaves_the_next_calls_in_step(
    spawn_backend: Spawn, caller: FlaskRedisSingle
) -> None:
    spawn_backend()
    admin = caller.getRedis()

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(Interrupted):  # it waits on its reply list for the held handler
            caller.broker.request(gate, Gate(key="gate:interrupted"), timeout=10)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    # The interrupted call's wait (BLMOVE) is still pending on the server while the next calls are made.
    sums = [caller.broker.request(add, AddIn(a=i, b=100), timeout=5).sum for i in range(5)]
    admin.rpush("gate:interrupted", 1)
    assert sums == [100, 101, 102, 103, 104]  # each call reads its own reply, not the one before's
    (report,) = caller.broker.broadcast(stats, None, gather=True, timeout=5)
    assert report.value is not None
    assert report.value.added == 5  # and each ran once


def test_a_refused_wait_is_a_typed_error_at_once(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    spawn_backend()
    assert caller.broker.request(add, AddIn(a=1, b=1), timeout=5).sum == 2
    admin = caller.getRedis()
    admin.config_set("maxmemory", 1)  # every write is refused (OOM), the BLMOVE of a waiting call included
    try:
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="OOM"):
            caller.broker.request(add, AddIn(a=2, b=2), timeout=5)
        assert time.monotonic() - started < 2.5  # not a retry loop until the deadline
    finally:
        admin.config_set("maxmemory", 0)
    assert caller.broker.request(add, AddIn(a=3, b=3), timeout=5).sum == 6


def test_many_open_files_do_not_make_each_call_reconnect(spawn_backend: Spawn, caller: FlaskRedisSingle) -> None:
    """select() cannot watch a descriptor of 1024 or more: the check for a stale connection must not need it."""
    spawn_backend()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"at most {hard} open files here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    files = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        admin = caller.getRedis()
        assert caller.broker.request(add, AddIn(a=0, b=1), timeout=5).sum == 1  # its connections open above 1024
        before = admin.info("stats")["total_connections_received"]
        for i in range(50):
            assert caller.broker.request(add, AddIn(a=i, b=1), timeout=5).sum == i + 1
        assert admin.info("stats")["total_connections_received"] - before <= 1  # the INFO call's own, if new
    finally:
        for fd in files:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_stop_leaves_a_waiting_call_its_reply_and_closes_its_connection(
    spawn_backend: Spawn, caller: FlaskRedisSingle
) -> None:
    spawn_backend()
    runtime = caller.broker.start(timeout=5)
    calls, results = call_at_gate(caller, "gate:stop", 1)
    own = f"flask-redis:{runtime.sender.id}"
    admin = caller.getRedis()
    wait_until(lambda: len(blocked_clients(admin, own, "blmove")) == 1)
    assert caller.broker.stop(timeout=0.5) is False  # the call is still waiting: stop does not cut it off
    admin.rpush("gate:stop", 1)
    calls[0].join(10)
    assert [type(result) for result in results] == [AddOut]
    wait_until(lambda: not [c for c in admin.client_list() if c.get("name") == own])  # nothing left open


def url_as_user(broker_env: dict[str, str], user: str, keys: list[str], commands: list[str]) -> str:
    """The test server's URL for a new ACL user with these keys and commands (and every channel)."""
    url = broker_env["REDIS_URL"]
    redis.Redis.from_url(url).acl_setuser(
        user, enabled=True, passwords=["+pw"], keys=keys, channels=["*"], commands=commands
    )
    return url.replace("redis://", f"redis://{user}:pw@")


def test_a_waiting_call_does_not_spin_while_redis_is_away(
    spawn_backend: Spawn, caller: FlaskRedisSingle, broker_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    spawn_backend()
    runtime = caller.broker.start(timeout=5)
    calls, results = call_at_gate(caller, "gate:away", 1, timeout=3)
    own = f"flask-redis:{runtime.sender.id}"
    wait_until(lambda: len(blocked_clients(caller.getRedis(), own, "blmove")) == 1)
    with caplog.at_level(logging.WARNING, logger="flask_multi_redis.broker.reply_lists"):
        broker_server.stop()  # Redis goes away while the call waits on its reply list
        try:
            calls[0].join(10)
        finally:
            broker_server.start()
    assert [type(result) for result in results] == [RequestTimeout]
    assert caplog.text.count("retrying until the deadline") == 1  # one warning, then retries with a pause


def test_a_caller_without_access_to_the_keys_gets_the_reason(
    spawn_backend: Spawn, broker_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    spawn_backend()
    limited = url_as_user(broker_env, "nokeys", keys=["elsewhere:*"], commands=["+@all"])
    caller = FlaskRedisSingle({"URL": limited, "PREFIX": broker_env["REDIS_PREFIX"]})
    try:
        with pytest.raises(BrokerUnavailable, match="NOPERM"):
            caller.broker.request(add, AddIn(a=1, b=1), timeout=5)
        with pytest.raises(BrokerUnavailable, match="could not read the registry: NoPermissionError NOPERM"):
            caller.broker.processes()
        assert "no permission to run scripts" not in caplog.text  # a key it may not touch is another matter
    finally:
        caller.broker.stop()
