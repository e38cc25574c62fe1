"""The listener: one connection for all subscriptions, and it survives bad callbacks, kills and restarts."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator

import pytest
import redis

from flask_multi_redis.broker import Listener

from .conftest import ServerFactory
from .proxy import proxy_to
from .servers import RedisServer
from .waiting import wait_until


@pytest.fixture
def server(redis_server_factory: ServerFactory) -> RedisServer:
    """A server of this test's own, which it may kill, pause or restart."""
    return redis_server_factory()


@pytest.fixture
def listener(server: RedisServer) -> Iterator[Listener]:
    client = redis.Redis(host=server.host, port=server.port, socket_timeout=2, socket_connect_timeout=1)
    listener = Listener(client, silence=0.5, backoff_cap=0.5)
    yield listener
    assert listener.stop(timeout=5)


class Inbox:
    """Collects what a callback receives, and lets a test wait for a given payload."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bytes]] = []
        self._changed = threading.Condition()

    def __call__(self, channel: bytes, data: bytes) -> None:
        with self._changed:
            self.messages.append((channel, data))
            self._changed.notify_all()

    def payloads(self) -> list[bytes]:
        return [data for _, data in self.messages]


def publish_until_received(server: RedisServer, channel: str, inbox: Inbox, payload: bytes) -> None:
    """Publish again and again until the listener got it: messages sent while it reconnects are lost (Redis)."""
    admin = server.admin()

    def received() -> bool:
        admin.publish(channel, payload)
        return payload in inbox.payloads()

    wait_until(received, timeout=15, interval=0.05)


def pubsub_clients(server: RedisServer) -> int:
    return len(server.admin().client_list(_type="pubsub"))


def test_one_connection_serves_every_subscription(server: RedisServer, listener: Listener) -> None:
    inboxes = {name: Inbox() for name in ("a", "b", "c")}
    for name, inbox in inboxes.items():
        listener.subscribe(name, inbox)
    listener.start()
    assert listener.wait_ready(5)
    for name in inboxes:
        assert server.admin().publish(name, name.encode()) == 1
    wait_until(lambda: all(inbox.payloads() for inbox in inboxes.values()))
    assert {name: inbox.payloads() for name, inbox in inboxes.items()} == {"a": [b"a"], "b": [b"b"], "c": [b"c"]}
    assert pubsub_clients(server) == 1
    health = listener.health()
    assert health.connected
    assert health.subscriptions == ("a", "b", "c")
    assert health.received == 3


def test_subscriptions_added_and_removed_while_running(server: RedisServer, listener: Listener) -> None:
    first, second = Inbox(), Inbox()
    listener.subscribe("first", first)
    listener.start()
    assert listener.wait_ready(5)
    listener.subscribe("second", second)
    assert listener.wait_ready(5)
    assert server.admin().publish("second", b"hello") == 1
    wait_until(lambda: second.payloads() == [b"hello"])
    listener.unsubscribe("first")
    wait_until(lambda: server.admin().pubsub_numsub("first") == [(b"first", 0)])
    assert server.admin().publish("first", b"gone") == 0
    assert pubsub_clients(server) == 1


def test_a_callback_that_raises_is_logged_and_counted(
    server: RedisServer, listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = Inbox()

    def explode(channel: bytes, data: bytes) -> None:
        if data == b"bad":
            raise ValueError("handler failed")
        inbox(channel, data)

    listener.subscribe("jobs", explode)
    listener.start()
    assert listener.wait_ready(5)
    with caplog.at_level(logging.ERROR, logger="flask_multi_redis.broker.listener"):
        for _ in range(100):
            server.admin().publish("jobs", b"bad")
        server.admin().publish("jobs", b"good")
        wait_until(lambda: inbox.payloads() == [b"good"])
    assert listener.health().failed == 100
    assert listener.running
    assert "callback for channel jobs raised" in caplog.text


def test_recovers_from_client_kill(server: RedisServer, listener: Listener, caplog: pytest.LogCaptureFixture) -> None:
    inbox = Inbox()
    listener.subscribe("events", inbox)
    listener.start()
    assert listener.wait_ready(5)
    killed = server.admin().client_kill_filter(_type="pubsub")
    assert killed == 1
    publish_until_received(server, "events", inbox, b"after-kill")
    assert listener.wait_ready(5)
    assert pubsub_clients(server) == 1


def test_recovers_from_a_server_restart(
    server: RedisServer, listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = Inbox()
    listener.subscribe("events", inbox)
    listener.start()
    assert listener.wait_ready(5)
    with caplog.at_level(logging.ERROR, logger="flask_multi_redis.broker.listener"):
        server.stop()
        wait_until(lambda: not listener.health().connected)
        server.start()
        publish_until_received(server, "events", inbox, b"after-restart")
    assert "lost its connection" in caplog.text
    assert listener.health().reconnects >= 1
    assert listener.running


def test_notices_a_silent_peer(server: RedisServer, listener: Listener, caplog: pytest.LogCaptureFixture) -> None:
    inbox = Inbox()
    listener.subscribe("events", inbox)
    listener.start()
    assert listener.wait_ready(5)
    assert server.process is not None
    with caplog.at_level(logging.ERROR, logger="flask_multi_redis.broker.listener"):
        os.kill(server.process.pid, signal.SIGSTOP)  # the socket stays open, nothing answers
        try:
            wait_until(lambda: not listener.health().connected, timeout=10)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        publish_until_received(server, "events", inbox, b"after-silence")
    assert "lost its connection" in caplog.text


def test_stop_ends_the_thread_and_closes_the_connection(server: RedisServer, listener: Listener) -> None:
    listener.subscribe("events", Inbox())
    listener.start()
    assert listener.wait_ready(5)
    assert pubsub_clients(server) == 1
    assert listener.stop(timeout=5)
    assert not listener.running
    wait_until(lambda: pubsub_clients(server) == 0)
    assert server.admin().publish("events", b"nobody") == 0


def test_a_large_message_arriving_slowly_is_traffic_not_silence(server: RedisServer) -> None:
    """A message that takes longer to arrive than a read's timeout and than the silence before a PING is
    delivered whole: the listener neither pings into the middle of it nor takes the peer for dead."""
    with proxy_to(server.host, server.port) as proxy:
        client = redis.Redis.from_url(proxy.url, socket_timeout=2)
        listener = Listener(client, silence=0.3, ping_timeout=0.3, backoff_cap=0.5)
        inbox = Inbox()
        listener.subscribe("slow", inbox)
        listener.start()
        try:
            assert listener.wait_ready(5)
            payload = b"x" * 20_000
            message = b"*3\r\n$7\r\nmessage\r\n$4\r\nslow\r\n$%d\r\n%s\r\n" % (len(payload), payload)
            pieces = [message[i : i + 1000] for i in range(0, len(message), 1000)]
            gaps = threading.Event()
            for piece in pieces:  # about 1.2 s in all, a piece every 60 ms
                proxy.inject(piece)
                gaps.wait(0.06)
            wait_until(lambda: inbox.payloads() == [payload], timeout=5)
            assert listener.health().reconnects == 0
        finally:
            assert listener.stop(timeout=5)
