"""Least privilege: the ACL users README.md writes out (read from it here) run every broker path with no NOPERM,
and may not flush the database, kill clients or touch another prefix's keys."""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
import redis

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Channel, commands
from flask_multi_redis.broker.caller import new_id
from flask_multi_redis.broker.envelope import deadline_after, pack
from flask_multi_redis.broker.pipeline import PipelinedConnection

from .apps.svc import AddIn, add, stats
from .conftest import ROOT
from .servers import RedisServer

Spawn = Callable[[], "subprocess.Popen[str]"]

#: The two ACL SETUSER lines of README.md, by user name.
README_USERS = dict(re.findall(r"^\s*ACL SETUSER (\w+) (.+)$", (ROOT / "README.md").read_text(), re.MULTILINE))


def create_user(admin: redis.Redis, name: str, prefix: str) -> str:
    """Create README's user ``name`` for ``prefix``; its password."""
    rules = README_USERS[name].replace("PREFIX", prefix).split()
    password = f"{name}-password"
    assert f">{password}" in rules
    admin.execute_command("ACL", "SETUSER", name, "reset", *rules)  # type: ignore[no-untyped-call]
    return password


@pytest.fixture
def users(broker_server: RedisServer, broker_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """README's users, for this test's prefix: name -> URL."""
    admin = broker_server.admin()
    urls = {}
    for name in ("web", "worker"):
        password = create_user(admin, name, broker_env["REDIS_PREFIX"])
        urls[name] = f"redis://{name}:{password}@127.0.0.1:{broker_server.port}/0"
    yield urls
    for name in urls:
        admin.acl_deluser(name)


def test_readme_writes_out_both_users() -> None:
    assert set(README_USERS) == {"web", "worker"}
    web, worker = set(README_USERS["web"].split()), set(README_USERS["worker"].split())
    assert worker - web == {"+zadd", "+zremrangebyscore", "+zrem", "+get", ">worker-password"}


def test_the_worker_may_claim_again(users: dict[str, str], broker_env: dict[str, str]) -> None:
    """The claim sent again when its reply was lost (rare, so no path above takes it) needs no more."""
    pipelined = PipelinedConnection(redis.Redis.from_url(users["worker"]))
    key = f"{broker_env['REDIS_PREFIX']}:fmr:claim:{new_id()}"
    try:
        assert pipelined.execute(*commands.claim(key, "me", 5000)) == b"OK"
        assert commands.claimed_by(pipelined.run(commands.claim_again(key, "me", 5000)), "me")
        assert not commands.claimed_by(pipelined.run(commands.claim_again(key, "another", 5000)), "another")
    finally:
        pipelined.close(5, for_good=True)


def test_every_broker_path_runs_as_those_users(
    spawn_backend: Spawn,
    users: dict[str, str],
    broker_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A worker (handlers and commands), a web process that serves a command, and calls of every kind."""
    prefix = broker_env["REDIS_PREFIX"]
    broker_env["REDIS_URL"] = users["worker"]
    backend = spawn_backend()
    ping = Channel("acl.ping", reply=str)
    web = FlaskRedisSingle({"URL": users["web"], "PREFIX": prefix})

    @web.broker.command(ping)
    def pong(_: object) -> str:
        return "pong"

    try:
        with caplog.at_level(logging.WARNING, logger="flask_multi_redis"):
            web.broker.start(timeout=5)
            sums = [web.broker.request(add, AddIn(a=i, b=1), timeout=5).sum for i in range(3)]
            concurrent: list[int] = []
            threads = [
                threading.Thread(target=lambda i=i: concurrent.append(web.broker.request(add, AddIn(a=i, b=0)).sum))
                for i in range(6)
            ]  # one waits on its reply list, the others on the inbox
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(10)
            replies = web.broker.broadcast(stats, None, gather=True, timeout=5)
            pongs = web.broker.broadcast(ping, None, gather=True, timeout=5)
            listed = web.broker.processes()
            responders = web.broker.responders(add)
            claimed = request_on_the_shared_channel(users["web"], prefix)
            assert web.broker.stop(timeout=5)
        assert sums == [1, 2, 3]
        assert sorted(concurrent) == list(range(6))
        assert [reply.ok for reply in replies] == [True]  # the worker's command
        assert [(reply.ok, reply.value) for reply in pongs] == [(True, "pong")]  # the web process's own
        assert {process.sender.pid for process in listed} >= {backend.pid}
        assert [process.sender.pid for process in responders] == [backend.pid]  # its heartbeat's ZADD went in
        assert claimed["body"]["sum"] == 5  # the worker claimed it (SET NX) and answered
        assert not [record.getMessage() for record in caplog.records]
    finally:
        web.broker.stop()
    backend.terminate()
    assert backend.wait(10) == 0  # its drain went through as the worker user too


def request_on_the_shared_channel(url: str, prefix: str) -> dict[str, Any]:
    """A request published to the shared request channel, as a foreign client would: served after a claim."""
    client = redis.Redis.from_url(url)
    request_id = new_id()
    envelope = pack("request", request_id, "math.add", b'{"a":2,"b":3}', deadline=deadline_after(5), max_size=4096)
    assert client.publish(f"{prefix}:fmr:req:math.add", envelope) == 1
    key = f"{prefix}:fmr:reply:{request_id}"
    answer = client.blmove(key, key, 5, "RIGHT", "RIGHT")
    client.close()
    assert answer is not None
    return orjson.loads(answer)  # type: ignore[no-any-return]


@pytest.mark.parametrize("name", ["web", "worker"])
def test_those_users_can_do_no_harm(users: dict[str, str], name: str) -> None:
    client = redis.Redis.from_url(users[name])
    for harm in (
        lambda: client.flushdb(),
        lambda: client.flushall(),
        lambda: client.client_kill_filter(_type="normal"),
        lambda: client.config_set("maxmemory", "1"),
        lambda: client.set("another-prefix:key", "x"),
        lambda: client.keys("*"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            harm()
    client.close()


def test_ping_and_check_need_nothing_more(users: dict[str, str], broker_env: dict[str, str]) -> None:
    from flask_multi_redis.connection import ping

    for url in users.values():
        assert ping(FlaskRedisSingle(url).getRedis()).version
