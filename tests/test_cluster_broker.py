"""The broker on a Redis Cluster: every key and channel of an environment carries the hash tag {PREFIX}, so one
shard serves it over sharded pub/sub; against a real cluster of three primaries with a replica each."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from flask import Flask

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Channel, NoResponders
from flask_multi_redis.testing import expect_broadcast

from .apps.svc import AddIn, add, whoami
from .conftest import ROOT
from .faults import TABLE, Load, calls_of
from .processes import APP, WORKER, run_cli, start_serve, stop_serve
from .test_acl import README_USERS
from .topologies import CLUSTER_NODE_TIMEOUT_MS, Cluster
from .waiting import wait_until

#: How README's ACL lines change on a cluster (README, "Running it in production").
CLUSTER_ACL_CHANGES = {
    "+subscribe +unsubscribe +publish +pubsub|numsub": "+ssubscribe +sunsubscribe +spublish +pubsub|shardnumsub"
}
CLUSTER_ACL_EXTRA = ["+cluster|slots", "+command"]

#: Calls must be served again within this many seconds of a primary's death (the node timeout, the election).
RESUME_WITHIN = CLUSTER_NODE_TIMEOUT_MS / 1000 * 2 + 4


def _backend(cluster: Cluster, prefix: str, url: str | None = None) -> subprocess.Popen[str]:
    return start_serve({**os.environ, "REDIS_URL": url or cluster.url, "REDIS_PREFIX": prefix, "PYTHONPATH": str(ROOT)})


@pytest.fixture
def prefix() -> str:
    return f"c{secrets.token_hex(4)}"


@pytest.fixture
def ext(redis_cluster: Cluster, prefix: str) -> Iterator[FlaskRedisSingle]:
    ext = FlaskRedisSingle({"URL": redis_cluster.url, "PREFIX": prefix, "SOCKET_TIMEOUT": 1})
    yield ext
    ext.broker.stop()
    ext.getCluster().close()


def test_requests_gathers_and_no_responders_on_a_cluster(
    redis_cluster: Cluster, ext: FlaskRedisSingle, prefix: str
) -> None:
    with pytest.raises(NoResponders):  # SPUBLISH counts the shard's subscribers: at once, not after the timeout
        ext.broker.request(add, AddIn(a=1, b=1), timeout=5)
    backend = _backend(redis_cluster, prefix)
    try:
        assert [ext.broker.request(add, AddIn(a=i, b=1), timeout=5).sum for i in range(20)] == list(range(1, 21))
        (reply,) = ext.broker.broadcast(whoami, None, gather=True, timeout=5)
        assert reply.value is not None
        assert reply.value.pid == backend.pid
        assert [process.sender.pid for process in ext.broker.processes()].count(backend.pid) == 1
    finally:
        stop_serve(backend)
    shard = redis_cluster.owner("{" + prefix + "}")
    with shard.client() as client:  # every key of the environment is on that one shard
        assert all(key.startswith(b"{" + prefix.encode() + b"}:fmr:") for key in client.keys("*" + prefix + "*"))


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster.start(tmp_path)
    yield cluster
    cluster.stop()


@dataclass
class Loaded:
    """A cluster of the test's own, a worker serving on it, and eight callers sending requests and gathers."""

    cluster: Cluster
    tag: str  # the broker's hash tag, {PREFIX}
    ext: FlaskRedisSingle
    backend: subprocess.Popen[str]
    load: Load

    def assert_gather_reaches_the_worker(self) -> None:
        (reply,) = self.ext.broker.broadcast(whoami, None, gather=True, timeout=5)
        assert reply.value is not None
        assert reply.value.pid == self.backend.pid


@pytest.fixture
def loaded(own_cluster: Cluster, prefix: str) -> Iterator[Loaded]:
    ext = FlaskRedisSingle({"URL": own_cluster.url, "PREFIX": prefix, "SOCKET_TIMEOUT": 1})
    backend = _backend(own_cluster, prefix)
    try:
        ext.broker.start(timeout=5)
        load = Load(calls_of(ext.broker, timeout=2, gather_every=4), callers=8, pause=0.05)
        wait_until(lambda: load.ok_since(0) >= 50, timeout=10)
        yield Loaded(own_cluster, "{" + prefix + "}", ext, backend, load)
        load.stop()
    finally:
        ext.broker.stop()
        stop_serve(backend)


def cluster_rules(name: str, prefix: str) -> list[str]:
    """README's ACL user ``name`` for a cluster, as the README says to change it."""
    line = README_USERS[name].replace("PREFIX", "{" + prefix + "}")
    for classic, sharded in CLUSTER_ACL_CHANGES.items():
        line = line.replace(classic, sharded)
    return [*line.split(), *CLUSTER_ACL_EXTRA]


def test_the_readme_users_serve_on_a_cluster(redis_cluster: Cluster, prefix: str) -> None:
    for node in redis_cluster.nodes:  # ACLs are per node: a cluster does not share them
        with node.client() as client:
            for name in ("web", "worker"):
                client.execute_command("ACL", "SETUSER", name, "reset", *cluster_rules(name, prefix))
    hosts = redis_cluster.url.removeprefix("redis+cluster://")
    worker_url = f"redis+cluster://worker:worker-password@{hosts}"
    backend = _backend(redis_cluster, prefix, worker_url)
    ext = FlaskRedisSingle({"URL": f"redis+cluster://web:web-password@{hosts}", "PREFIX": prefix})
    try:
        assert ext.broker.request(add, AddIn(a=20, b=22), timeout=5).sum == 42
        (reply,) = ext.broker.broadcast(whoami, None, gather=True, timeout=5)
        assert reply.value is not None
        assert [process.sender.pid for process in ext.broker.processes()].count(backend.pid) == 1
        with pytest.raises(redis.exceptions.NoPermissionError):
            ext.getCluster().flushall()
    finally:
        ext.broker.stop()
        stop_serve(backend)
        for node in redis_cluster.nodes:
            with node.client() as client:
                client.execute_command("ACL", "DELUSER", "web", "worker")


def test_the_worker_checks_and_lists_on_a_cluster(redis_cluster: Cluster, prefix: str) -> None:
    backend = _backend(redis_cluster, prefix)
    env = {**os.environ, "REDIS_URL": redis_cluster.url, "REDIS_PREFIX": prefix, "PYTHONPATH": str(ROOT)}
    try:
        done = run_cli(env, WORKER, APP, "--router", "tests.apps.svc:backend", "--check")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"ok: app 'svc', Redis at {redis_cluster.url}")
        listed = run_cli(env, sys.executable, "-m", "flask", "--app", APP, "redis", "workers")
        assert listed.returncode == 0, listed.stderr
        assert str(backend.pid) in listed.stdout
    finally:
        stop_serve(backend)


@pytest.mark.faults
def test_the_broker_resumes_when_its_shards_primary_is_killed(loaded: Loaded) -> None:
    loaded.cluster.owner(loaded.tag).kill()
    killed = time.monotonic()
    wait_until(lambda: loaded.load.ok_since(killed + RESUME_WITHIN / 2) >= 50, timeout=RESUME_WITHIN + 15)
    scenario = "the cluster primary of the broker's shard killed (SIGKILL), its replica promoted"
    row = TABLE.add(scenario, loaded.load, killed)
    assert row.late == 0, row
    assert row.recovery is not None, row
    assert row.recovery < RESUME_WITHIN, row
    loaded.assert_gather_reaches_the_worker()


@pytest.mark.faults
def test_the_broker_follows_a_failover_that_keeps_the_old_primary(loaded: Loaded) -> None:
    """CLUSTER FAILOVER on the shard's replica: the old primary stays up, turned replica, with its connections
    open. Its subscribers are unsubscribed by Redis, writes to it answer MOVED: every process moves."""
    replica = loaded.cluster.replica_of(loaded.cluster.owner(loaded.tag))
    with replica.client() as client:
        client.execute_command("CLUSTER", "FAILOVER")
    moved = time.monotonic()
    wait_until(lambda: loaded.cluster.owner(loaded.tag) is replica, timeout=10)
    wait_until(lambda: loaded.load.ok_since(moved + 1) >= 50, timeout=15)
    row = TABLE.add("CLUSTER FAILOVER of the broker's shard (the old primary stays, a replica)", loaded.load, moved)
    assert row.late == 0, row
    assert row.recovery is not None, row
    assert row.recovery < 3, row
    loaded.assert_gather_reaches_the_worker()


@pytest.mark.faults
def test_the_broker_follows_its_slot_to_another_shard(loaded: Loaded) -> None:
    """The slot of {PREFIX} migrated, keys and all, under load: ASK and MOVED answers close connections, the
    old owner unsubscribes the listeners, and every process goes on at the new owner."""
    target = next(node for node in loaded.cluster.primaries() if node is not loaded.cluster.owner(loaded.tag))
    loaded.cluster.migrate_slot(loaded.tag, target)
    moved = time.monotonic()
    assert loaded.cluster.owner(loaded.tag) is target
    wait_until(lambda: loaded.load.ok_since(moved + 1) >= 50, timeout=15)
    row = TABLE.add("the slot of the broker's hash tag migrated to another shard, under load", loaded.load, moved)
    assert row.late == 0, row
    assert row.recovery is not None, row
    assert row.recovery < RESUME_WITHIN, row
    loaded.assert_gather_reaches_the_worker()


@pytest.mark.faults
def test_a_killed_primary_that_restarts_rejoins_as_a_replica(loaded: Loaded) -> None:
    """The shard's primary killed, its replica promoted, then the old node started again: it rejoins as the
    new primary's replica, and the broker, on the new primary, is not disturbed by it."""
    cluster, old = loaded.cluster, loaded.cluster.owner(loaded.tag)
    old.kill()
    wait_until(lambda: cluster.owner(loaded.tag) is not old, timeout=RESUME_WITHIN + 5, interval=0.1)
    old.start()  # its nodes.conf is kept: it comes back as a replica of the promoted one
    restarted = time.monotonic()

    def rejoined() -> bool:
        try:
            return cluster.replica_of(cluster.owner(loaded.tag)) is old
        except LookupError:
            return False

    wait_until(rejoined, timeout=15, interval=0.1)
    wait_until(lambda: loaded.load.ok_since(restarted) >= 50, timeout=15)
    row = TABLE.add("the cluster primary of the broker's shard killed, then started again", loaded.load, None)
    assert row.late == 0, row
    loaded.assert_gather_reaches_the_worker()


@pytest.mark.faults
def test_the_broker_leaves_a_primary_gone_silent(loaded: Loaded) -> None:
    """The shard's primary stopped (SIGSTOP: no FIN, no RST, its connections hang): reads and connects time out
    instead of being refused, and the broker must still read the new slot map and move to the promoted replica."""
    silent = loaded.cluster.owner(loaded.tag)
    silent.pause()
    paused = time.monotonic()
    try:
        wait_until(lambda: loaded.load.ok_since(paused + RESUME_WITHIN / 2) >= 50, timeout=RESUME_WITHIN + 15)
        row = TABLE.add("the cluster primary of the broker's shard gone silent (SIGSTOP)", loaded.load, paused)
        assert row.late == 0, row
        assert row.recovery is not None, row
        # slower than a kill: every read on the silent node waits out a socket timeout (the worker's: 5 s), the
        # listener's silence check too, before the slot map read anew names the promoted replica
        assert row.recovery < RESUME_WITHIN + 10, row
    finally:
        silent.resume()


def test_expect_broadcast_hears_a_broadcast_on_a_cluster(redis_cluster: Cluster, prefix: str) -> None:
    """The testing helper listens where the broker publishes there: the shard of its hash tag, sharded."""
    reload_settings = Channel("config.reload", request=AddIn, reply=dict)
    app = Flask(__name__)
    app.config["REDIS"] = {"URL": redis_cluster.url, "PREFIX": prefix, "SOCKET_TIMEOUT": 1}
    ext = FlaskRedisSingle(app)
    try:
        with expect_broadcast(app, reload_settings, timeout=5) as seen, app.app_context():
            assert ext.broker.publish(reload_settings, AddIn(a=1, b=2)) == 1  # the helper's subscription
        assert seen == [AddIn(a=1, b=2)]
    finally:
        with app.app_context():
            ext.broker.stop()
            ext.getCluster().close()
