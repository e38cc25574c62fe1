"""The connection layer at its edges: values in a URL read as their keys are, secrets kept out of errors, what a
database on a server of its own inherits, forks during a sentinel lookup or a cluster's first use, and
publish_and_wait_reply's deadline on a silent server."""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.sentinel import SentinelConnectionPool

from flask_multi_redis import ConfigurationError, FlaskRedisMulti, FlaskRedisSingle, ReplyTimeout

from .servers import RedisServer
from .sessions import close_sessions
from .topologies import SentinelSet
from .waiting import wait_until

# --- URL query settings: validated as the keys they stand for ------------------------------------------------


def test_decode_responses_false_in_a_url_query_is_false(redis_url: str) -> None:
    """``?decode_responses=false`` in a URL is False, as the key would be (redis-py alone would pass the text
    "false" on, which is true, and every reply would be decoded)."""
    ext = FlaskRedisSingle({"URL": f"{redis_url}/0?decode_responses=false"})
    session = ext.getRedis()
    try:
        session.set("k", "v")
        assert session.get("k") == b"v"
    finally:
        session.connection_pool.disconnect()


def test_decode_responses_false_in_the_url_and_as_a_key_agree() -> None:
    """The same value in the URL and as a key is no contradiction: the URL's is read as the key's would be."""
    ext = FlaskRedisSingle({"URL": "redis://h.local/0?decode_responses=false", "DECODE_RESPONSES": False})
    assert ext.getRedis().connection_pool.connection_kwargs["decode_responses"] is False


def test_an_ssl_cert_reqs_refused_as_a_key_is_refused_in_the_url_query() -> None:
    """A value refused as a key (SSL_CERT_REQS "bogus") is refused in a URL's query too, not at the first command."""
    with pytest.raises(ConfigurationError):
        FlaskRedisSingle({"URL": "rediss://h.local/0", "SSL_CERT_REQS": "bogus"})  # as a key: refused at once
    with pytest.raises(ConfigurationError):
        FlaskRedisSingle({"URL": "rediss://h.local/0?ssl_cert_reqs=bogus"})


# --- secrets in error texts ----------------------------------------------------------------------------------

PRIVATE_KEY = (
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7secret\n-----END PRIVATE KEY-----"
)


def test_a_private_key_given_in_place_of_its_path_is_not_echoed() -> None:
    """SSL_KEYFILE holding the key itself (as secret stores hand it out) instead of a path: the "no such file"
    error does not quote it."""
    with pytest.raises(ConfigurationError) as caught:
        FlaskRedisSingle({"URL": "rediss://h.local:6380/0", "SSL_KEYFILE": PRIVATE_KEY})
    assert "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7secret" not in str(caught.value)


@pytest.mark.parametrize(
    "config",
    [
        {"SENTINELS": [":s3cr3t-Pa55@10.0.0.1:26379"], "SENTINEL_MASTER": "mymaster"},
        {"CLUSTER_NODES": ["redis://:s3cr3t-Pa55@10.0.0.1:7000"]},
    ],
    ids=["sentinels", "cluster-nodes"],
)
def test_a_node_written_with_its_password_is_not_echoed(config: dict[str, Any]) -> None:
    """A sentinel or startup node written with credentials (a URL where host:port is expected) is refused without
    quoting the password (README: passwords never appear in an error message)."""
    with pytest.raises(ConfigurationError) as caught:
        FlaskRedisSingle(config)
    assert "s3cr3t-Pa55" not in str(caught.value)


# --- per-database overrides --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("top", "own"),
    [
        (
            {"SENTINELS": ["10.0.0.1:26379"], "SENTINEL_MASTER": "mymaster", "SENTINEL_PASSWORD": "watch-pw"},
            {"URL": "redis://10.0.0.9:6379/2"},
        ),
        (
            {"SENTINELS": ["10.0.0.1:26379"], "SENTINEL_MASTER": "mymaster", "SENTINEL_PASSWORD": "watch-pw"},
            {"URL": "redis+cluster://10.0.0.7:7000"},
        ),
        ({"URL": "redis+cluster://10.0.0.7:7000", "SHARDED_PUBSUB": True}, {"URL": "redis://10.0.0.9:6379/2"}),
    ],
    ids=["sentinels-then-one-server", "sentinels-then-cluster", "cluster-then-one-server"],
)
def test_a_database_on_a_server_of_its_own_takes_no_topology_setting_from_the_top(
    top: dict[str, Any], own: dict[str, Any]
) -> None:
    """README: a database that names a server of its own inherits no location or TLS key; nor the settings of a
    topology it does not have (the top level's SENTINEL_PASSWORD, SHARDED_PUBSUB), which would refuse it for a key
    never written under it."""
    ext = FlaskRedisMulti({**top, "DATABASES": {"main": 0, "local": own}})
    assert ext.addresses()["local"].startswith(own["URL"].split("/")[0])


# --- behind Sentinel -----------------------------------------------------------------------------------------


@pytest.fixture
def ext(sentinel_set: SentinelSet) -> Iterator[FlaskRedisSingle]:
    ext = FlaskRedisSingle({"URL": sentinel_set.url, "PREFIX": f"s{secrets.token_hex(4)}", "SOCKET_TIMEOUT": 1})
    yield ext
    close_sessions(ext)


def test_a_sessions_publish_follows_a_switch_over_by_hand(sentinel_set: SentinelSet, ext: FlaskRedisSingle) -> None:
    """README: getRedis() is a session on the current primary. After a switch-over by hand the demoted primary
    takes PUBLISH without a word (no READONLY to make redis-py leave it): the session learns the new primary in
    the background while it is used, and its publishes reach the new primary's subscribers within seconds."""
    session = ext.getRedis()
    assert session.publish("news", "before") == 0  # a pooled connection, on the primary
    new = sentinel_set.replica
    sentinel_set.switch_over()
    with new.client() as client, client.pubsub() as subscriber:
        subscriber.subscribe(session.channel("news"))
        wait_until(lambda: subscriber.get_message(timeout=0.1) is not None)  # the confirmation
        wait_until(lambda: session.publish("news", "after") == 1, timeout=10, interval=0.1)


def test_a_child_forked_during_a_sentinel_lookup_can_still_ask_the_sentinels(
    sentinel_set: SentinelSet, ext: FlaskRedisSingle
) -> None:
    """gunicorn --preload, multiprocessing: a session made before the fork is used after it. A child forked while a
    thread of the parent was asking the sentinels (a sentinel slow to answer) has a lookup lock of its own
    (forks.ProcessLock), not its parent's held one, and reaches the primary."""
    session = ext.getRedis()
    session.ping()
    pool = session.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    manager = pool.sentinel_manager
    for node in sentinel_set.sentinels:
        node.pause()
    resumed = False
    try:
        asker = threading.Thread(target=lambda: _ask_quietly(session), daemon=True)
        asker.start()
        wait_until(manager._lookup.locked, timeout=5)

        def reaches_the_primary() -> bool:  # its pool is reset after the fork: it asks the sentinels anew
            for _ in range(50):
                try:
                    return bool(session.ping())
                except redis.RedisError:
                    continue
            return False

        def resume() -> None:
            nonlocal resumed
            for node in sentinel_set.sentinels:
                node.resume()
            resumed = True

        assert _child_answers(reaches_the_primary, 20, resume), "the forked child's session did not reach the primary"
        asker.join(30)
    finally:
        if not resumed:
            for node in sentinel_set.sentinels:
                node.resume()


def _ask_quietly(session: redis.Redis) -> None:
    pool = session.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    with contextlib.suppress(redis.RedisError):
        pool.get_master_address()  # type: ignore[no-untyped-call]


# --- deadlines -----------------------------------------------------------------------------------------------


def test_publish_and_wait_reply_ends_by_its_deadline_when_the_server_is_silent(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """README: publish_and_wait_reply raises ReplyTimeout at the deadline. With the server silent (SIGSTOP), the
    reply channel's subscription is confirmed within the call's timeout, not the socket timeout (5 s)."""
    server = redis_server_factory()
    session = FlaskRedisSingle({"URL": server.url, "PREFIX": "silent"}).getRedis()
    session.ping()  # a connection in the pool: nothing left to connect or hand-shake
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(ReplyTimeout):
            session.publish_and_wait_reply("svc", {"a": 1}, timeout=1)
        assert time.monotonic() - started < 1.5
    finally:
        server.process.send_signal(signal.SIGCONT)
        session.connection_pool.disconnect()


def _child_answers(work: Callable[[], bool], within: float, then: Callable[[], None]) -> bool:
    """Fork; the child runs ``work`` and reports whether it returned true, the parent runs ``then``; whether the
    child's work returned true within ``within`` seconds."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.write(write_end, b"1" if work() else b"0")
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        then()
        answered = select.select([read_end], [], [], within)[0]
        if not answered:
            os.kill(pid, signal.SIGKILL)
        return bool(answered) and os.read(read_end, 1) == b"1"
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)


def test_a_child_forked_while_a_cluster_session_is_being_made_can_make_its_own(
    redis_server_factory: Callable[..., RedisServer],
) -> None:
    """A cluster's session is made on first use under the app state's lock, while it reads the slot map. A child
    forked meanwhile (another thread of a preloaded app touching getCluster()) has a lock of its own and makes
    its own session."""
    server = redis_server_factory()  # a startup node slow to answer (SIGSTOP), then answering again
    ext = FlaskRedisSingle({"CLUSTER": True, "HOST": server.host, "PORT": server.port, "SOCKET_TIMEOUT": 1})
    state = ext._state()
    process = server.process
    assert process is not None
    process.send_signal(signal.SIGSTOP)
    resumed = False
    try:
        maker = threading.Thread(target=lambda: _make_quietly(ext), daemon=True)
        maker.start()
        wait_until(state._lock.locked, timeout=5)

        def gets_an_answer() -> bool:
            with contextlib.suppress(redis.RedisError):  # that node is no cluster node: refused, at once
                ext.getCluster()
            return True

        def resume() -> None:  # after the fork: the child's own attempt finds the node answering
            nonlocal resumed
            process.send_signal(signal.SIGCONT)
            resumed = True

        assert _child_answers(gets_an_answer, 15, resume), "the forked child's getCluster() did not return"
        maker.join(30)
    finally:
        if not resumed:
            process.send_signal(signal.SIGCONT)


def _make_quietly(ext: FlaskRedisSingle) -> None:
    with contextlib.suppress(redis.RedisError):
        ext.getCluster()
