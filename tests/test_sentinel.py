"""Behind Redis Sentinel: sessions on the primary and on a replica, and the broker through a failover, against a
real primary, replica and three sentinels started by the tests."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask

from flask_multi_redis import FlaskRedisSingle

from .apps.svc import AddIn, add, whoami
from .conftest import ROOT
from .faults import TABLE, Load, calls_of
from .processes import APP, WORKER, run_cli, start_serve, stop_serve
from .servers import TLSFiles
from .sessions import close_sessions
from .topologies import DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS, SentinelSet
from .waiting import wait_until

MakeApp = Callable[..., Flask]

#: A failover must be over, and calls served again, within this many seconds of the primary's death.
RESUME_WITHIN = (DOWN_AFTER_MS + FAILOVER_TIMEOUT_MS) / 1000 + 2


@pytest.fixture
def ext(sentinel_set: SentinelSet) -> Iterator[FlaskRedisSingle]:
    ext = FlaskRedisSingle({"URL": sentinel_set.url, "PREFIX": f"s{secrets.token_hex(4)}", "SOCKET_TIMEOUT": 1})
    yield ext
    close_sessions(ext)


def test_a_session_writes_to_the_primary_and_reads_from_a_replica(
    sentinel_set: SentinelSet, ext: FlaskRedisSingle
) -> None:
    primary, replica = ext.getRedis(), ext.getRedis(replica=True)
    primary.set("greeting", "hello")
    wait_until(lambda: replica.get("greeting") == b"hello", timeout=5)
    assert replica.info("replication")["role"] == "slave"
    with pytest.raises(redis.ReadOnlyError):
        replica.set("greeting", "refused")
    assert "redis+sentinel://127.0.0.1:" in ext.addresses()["default"]


def test_a_session_follows_the_primary_through_a_failover(sentinel_set: SentinelSet, ext: FlaskRedisSingle) -> None:
    session = ext.getRedis()
    session.set("before", 1)
    with sentinel_set.replica.client() as replica:
        wait_until(lambda: replica.get("before") == b"1", timeout=10)  # replicated before the kill
    sentinel_set.primary.kill()
    killed = time.monotonic()

    def writes() -> bool:
        try:
            return bool(session.set("after", 2))
        except (redis.ConnectionError, redis.TimeoutError):
            return False

    wait_until(writes, timeout=RESUME_WITHIN + 5, interval=0.1)
    assert time.monotonic() - killed < RESUME_WITHIN
    assert sentinel_set.primary_port() == sentinel_set.replica.port
    assert session.get("before") == b"1"


def _env(sentinel_set: SentinelSet, prefix: str) -> dict[str, str]:
    return {
        **os.environ,
        "REDIS_URL": sentinel_set.url,
        "REDIS_PREFIX": prefix,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }


def test_ping_shows_every_node_and_its_role(sentinel_set: SentinelSet, make_app: MakeApp) -> None:
    app = make_app(REDIS={"URL": sentinel_set.url})
    FlaskRedisSingle(app)
    result = app.test_cli_runner().invoke(args=["redis", "ping"])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert lines[0][1] == sentinel_set.url + "/0"
    assert ["primary", f"127.0.0.1:{sentinel_set.primary.port}", "ok"] in lines
    assert ["replica", f"127.0.0.1:{sentinel_set.replica.port}", "ok"] in lines
    for node in sentinel_set.sentinels:
        assert ["sentinel", f"127.0.0.1:{node.port}", "ok"] in lines
    sentinel_set.sentinels[0].kill()
    result = app.test_cli_runner().invoke(args=["redis", "ping"])
    assert result.exit_code == 0, result.output  # the primary answers: one sentinel down is reported, no failure
    assert f"sentinel  127.0.0.1:{sentinel_set.sentinels[0].port}  unreachable: " in result.output


def test_the_worker_checks_and_lists_behind_sentinels(
    sentinel_set: SentinelSet, backend: subprocess.Popen[str], ext: FlaskRedisSingle
) -> None:
    env = _env(sentinel_set, ext.getRedis().prefix)
    done = run_cli(env, WORKER, APP, "--router", "tests.apps.svc:backend", "--check")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok: app 'svc', Redis at {sentinel_set.url}/0")
    listed = run_cli(env, sys.executable, "-m", "flask", "--app", APP, "redis", "workers")
    assert listed.returncode == 0, listed.stderr
    assert str(backend.pid) in listed.stdout


@pytest.fixture
def backend(sentinel_set: SentinelSet, ext: FlaskRedisSingle) -> Iterator[subprocess.Popen[str]]:
    """A tests/apps/serve.py process configured with the set's URL, in the caller's prefix."""
    process = start_serve(_env(sentinel_set, ext.getRedis().prefix))
    yield process
    stop_serve(process)


def test_the_broker_serves_behind_sentinels(backend: subprocess.Popen[str], ext: FlaskRedisSingle) -> None:
    assert ext.broker.request(add, AddIn(a=20, b=22), timeout=5).sum == 42
    (reply,) = ext.broker.broadcast(whoami, None, gather=True, timeout=5)
    assert reply.value is not None
    assert reply.value.pid == backend.pid


@pytest.mark.faults
def test_the_broker_resumes_after_the_primary_is_killed(
    sentinel_set: SentinelSet, backend: subprocess.Popen[str], ext: FlaskRedisSingle
) -> None:
    """SIGKILL of the primary under a load of requests and gathers: calls resume on the promoted replica within
    the sentinels' down-after and failover times and 2 s; no call ends later than its deadline and 1 s; the
    listeners follow the primary, so a gather reaches the worker again."""
    ext.broker.start(timeout=5)
    load = Load(calls_of(ext.broker, timeout=2, gather_every=4), callers=8, pause=0.05)
    wait_until(lambda: load.ok_since(0) >= 50, timeout=10)
    sentinel_set.primary.kill()
    killed = time.monotonic()
    wait_until(lambda: load.ok_since(killed + RESUME_WITHIN / 2) >= 50, timeout=RESUME_WITHIN + 10)
    row = TABLE.add("the Sentinel-managed primary killed (SIGKILL), a replica promoted", load, killed)
    assert row.late == 0, row
    assert row.recovery is not None, row
    assert row.recovery < RESUME_WITHIN, row
    assert sentinel_set.primary_port() == sentinel_set.replica.port
    (reply,) = ext.broker.broadcast(whoami, None, gather=True, timeout=5)
    assert reply.value is not None
    assert reply.value.pid == backend.pid


@pytest.mark.faults
def test_a_primary_demoted_with_its_connections_open_is_left_within_seconds(
    sentinel_set: SentinelSet, backend: subprocess.Popen[str], ext: FlaskRedisSingle
) -> None:
    """A switch-over by hand: the replica is promoted, the old primary made its replica, the sentinels told; no
    connection is closed. Subscribers left on the old primary would still get messages through replication,
    but nobody would count them: every process must move to the new primary by itself."""
    assert ext.broker.request(add, AddIn(a=1, b=1), timeout=5).sum == 2
    new = sentinel_set.replica
    sentinel_set.switch_over()
    moved = time.monotonic()

    def served_on_the_new_primary() -> bool:
        with new.client() as client:
            subscribers = sum(int(count) for _, count in client.pubsub_numsub(*_listener_channels(ext)))
        return subscribers >= 2  # the caller's inbox and the worker's request channel

    wait_until(served_on_the_new_primary, timeout=10, interval=0.1)
    assert time.monotonic() - moved < 5
    assert ext.broker.request(add, AddIn(a=2, b=2), timeout=5).sum == 4
    (reply,) = ext.broker.broadcast(whoami, None, gather=True, timeout=5)
    assert reply.value is not None
    assert reply.value.pid == backend.pid


def _listener_channels(ext: FlaskRedisSingle) -> list[str]:
    prefix = ext.getRedis().prefix
    return [f"{prefix}:fmr:inbox:{ext.broker.runtime().sender.id}", f"{prefix}:fmr:req:{add.name}"]


def test_sentinels_with_a_password_of_their_own(tmp_path: Path) -> None:
    topology = SentinelSet.start(tmp_path, password="sentinel-secret")
    try:
        config = {"URL": topology.url, "SENTINEL_PASSWORD": "sentinel-secret", "PREFIX": "guarded"}
        _serves_and_refuses(config, {"URL": topology.url, "SENTINEL_PASSWORD": "wrong-password-1"})
    finally:
        topology.stop()


def test_tls_to_the_data_nodes_and_to_the_sentinels(tmp_path: Path, tls_files: TLSFiles) -> None:
    """rediss+sentinel://: the sentinels are asked over TLS, with the same CA, and so is the primary."""
    topology = SentinelSet.start(tmp_path, tls=tls_files)
    try:
        url = topology.url.replace("redis+sentinel://", "rediss+sentinel://")
        config = {"URL": url, "SSL_CA_CERTS": str(tls_files.ca), "PREFIX": "tls"}
        _serves_and_refuses(config, {"URL": topology.url})  # no TLS: the sentinels cannot be asked
    finally:
        topology.stop()


@pytest.mark.faults
def test_the_broker_leaves_a_primary_gone_silent(
    sentinel_set: SentinelSet, backend: subprocess.Popen[str], ext: FlaskRedisSingle
) -> None:
    """The primary stopped (SIGSTOP: its connections hang, no FIN, no RST): the sentinels fail over, and every
    process leaves it, by timeouts and by asking the sentinels, with no call past its deadline."""
    ext.broker.start(timeout=5)
    load = Load(calls_of(ext.broker, timeout=2, gather_every=4), callers=8, pause=0.05)
    wait_until(lambda: load.ok_since(0) >= 50, timeout=10)
    sentinel_set.primary.pause()
    paused = time.monotonic()
    try:
        wait_until(lambda: load.ok_since(paused + RESUME_WITHIN / 2) >= 50, timeout=RESUME_WITHIN + 20)
        row = TABLE.add("the Sentinel-managed primary gone silent (SIGSTOP), a replica promoted", load, paused)
        assert row.late == 0, row
        assert row.recovery is not None, row
        assert row.recovery < RESUME_WITHIN + 10, row  # reads on the silent primary wait out socket timeouts
    finally:
        sentinel_set.primary.resume()


def _serves_and_refuses(config: dict[str, str], wrong: dict[str, str]) -> None:
    """A session and the broker work with ``config``; with ``wrong`` the sentinels cannot be asked."""
    ext = FlaskRedisSingle(config)
    ext.getRedis().set("k", "v")
    assert ext.getRedis().get("k") == b"v"
    assert ext.getRedis(replica=True).info("replication")["role"] == "slave"
    ext.broker.handler(add)(lambda message: {"sum": message.a + message.b, "pid": os.getpid()})
    assert ext.broker.request(add, AddIn(a=2, b=3), timeout=5).sum == 5
    ext.broker.stop()
    with pytest.raises(redis.ConnectionError, match="No master found"):
        FlaskRedisSingle(wrong).getRedis().ping()
