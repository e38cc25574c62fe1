"""Reply lists: the one call that waits on its own list, and the lists deleted with the next command."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pytest
import redis

from flask_multi_redis.broker import names
from flask_multi_redis.broker.caller import new_id
from flask_multi_redis.broker.envelope import Envelope, Sender, pack
from flask_multi_redis.broker.health import Counters
from flask_multi_redis.broker.intake import Intake
from flask_multi_redis.broker.pipeline import PipelinedConnection
from flask_multi_redis.broker.reply_lists import MARKER, DeferredUnlink, ReplyListWait

from .proxy import proxy_to
from .servers import RedisServer
from .waiting import wait_until

SENDER = Sender(id="test-1-abc", host="test", pid=1, role="test")


@dataclass
class Parts:
    admin: redis.Redis
    pipelined: PipelinedConnection
    unlinks: DeferredUnlink
    counters: Counters
    wait: ReplyListWait


@pytest.fixture
def parts(redis_url: str) -> Iterator[Parts]:
    client = redis.Redis.from_url(redis_url, socket_timeout=5, client_name="reply-wait-test")
    pipelined = PipelinedConnection(client)
    counters = Counters()
    unlinks = DeferredUnlink()
    wait = ReplyListWait(client, pipelined, unlinks, Intake(counters, 1 << 20), wait_slice=2.0)
    yield Parts(redis.Redis.from_url(redis_url), pipelined, unlinks, counters, wait)
    wait.close(5)
    pipelined.close(5, for_good=True)


def publish(parts: Parts, channel: str, key: str) -> bool:
    """Publish a request as the one call that waits on its reply list; whether anybody received it."""
    assert parts.wait.take()
    try:
        return parts.wait.publish(channel, b"request", key, time.monotonic() + 10, marked=False)
    finally:
        parts.wait.release()


def wait_alone(parts: Parts, call_id: str, key: str, seconds: float = 5, started: bool = False) -> Envelope | None:
    """Wait for the answer to ``call_id`` as the one call that waits on its reply list."""
    assert parts.wait.take()
    try:
        return parts.wait.wait(call_id, "test.channel", key, time.monotonic() + seconds, started=started)
    finally:
        parts.wait.release()


def answer(call_id: str, value: int) -> bytes:
    return pack("reply", call_id, "test.channel", b'{"value":%d}' % value, sender=SENDER, max_size=1 << 20)


def test_a_published_request_waits_for_its_answer(parts: Parts) -> None:
    call_id = new_id()
    key = names.reply_key("t", call_id)
    listener = parts.admin.pubsub()
    listener.subscribe("t:someone")  # somebody receives the request
    wait_until(lambda: parts.admin.pubsub_numsub("t:someone")[0][1] == 1)
    assert parts.wait.take()
    try:
        assert parts.wait.publish("t:someone", b"request", key, time.monotonic() + 5, marked=False)
        threading.Timer(0.1, parts.admin.rpush, (key, answer(call_id, 7))).start()
        found = parts.wait.wait(call_id, "test.channel", key, time.monotonic() + 5, started=True)
    finally:
        parts.wait.release()
    listener.close()
    assert found is not None
    assert (found.kind, found.id, found.body) == ("reply", call_id, {"value": 7})


def test_a_late_nobody_marker_and_a_stranger_are_taken_out_quietly(
    parts: Parts, caplog: pytest.LogCaptureFixture
) -> None:
    """An earlier attempt's marker can land after that attempt's UNLINK, and another call's answer may be pushed
    by a confused peer: the wait skips both, and leaves only its own answer in the list."""
    call_id = new_id()
    key = names.reply_key("t", call_id)
    parts.admin.rpush(key, MARKER)
    ours = answer(call_id, 2)
    threading.Timer(0.1, parts.admin.rpush, (key, answer(new_id(), 3))).start()
    threading.Timer(0.3, parts.admin.rpush, (key, ours)).start()
    found = wait_alone(parts, call_id, key)
    assert found is not None
    assert found.id == call_id
    assert parts.admin.lrange(key, 0, -1) == [ours]  # it stays until the caller's UNLINK
    assert parts.counters.dropped == 0
    assert "dropped" not in caplog.text


def test_the_wait_ends_at_its_deadline(parts: Parts) -> None:
    call_id = new_id()
    started = time.monotonic()
    assert parts.wait.take()
    try:
        assert (
            parts.wait.wait(call_id, "test.channel", names.reply_key("t", call_id), started + 0.3, started=False)
            is None
        )
    finally:
        parts.wait.release()
    assert 0.3 <= time.monotonic() - started < 1.0


def test_a_lost_connection_loses_nothing(parts: Parts) -> None:
    """The wait's connection is killed while it waits: the wait starts again on a new one and finds the answer."""
    call_id = new_id()
    key = names.reply_key("t", call_id)
    found: list[object] = []

    def waiting() -> None:
        assert parts.wait.take()
        try:
            found.append(parts.wait.wait(call_id, "test.channel", key, time.monotonic() + 10, started=False))
        finally:
            parts.wait.release()

    thread = threading.Thread(target=waiting)
    thread.start()

    def blocked() -> list[dict[str, str]]:
        clients = parts.admin.client_list()
        return [c for c in clients if c.get("name") == "reply-wait-test" and c.get("cmd") == "blmove"]

    wait_until(lambda: len(blocked()) == 1)
    assert parts.admin.client_kill_filter(_id=blocked()[0]["id"]) == 1
    parts.admin.rpush(key, answer(call_id, 5))
    thread.join(10)
    assert [getattr(envelope, "id", None) for envelope in found] == [call_id]


def test_a_request_nobody_received_ends_its_wait_at_once(parts: Parts) -> None:
    call_id = new_id()
    key = names.reply_key("t", call_id)
    started = time.monotonic()
    assert not publish(parts, "t:nobody", key)
    assert time.monotonic() - started < 1.0  # the marker ended it, not the 2 s wait
    assert parts.admin.lrange(key, 0, -1) == [MARKER]  # the next attempt, or the caller, deletes it


def test_nobody_is_found_at_once_even_when_the_marker_cannot_be_pushed(parts: Parts) -> None:
    parts.pipelined.close(for_good=True)  # the marker that would end the wait cannot be pushed
    key = names.reply_key("t", new_id())
    started = time.monotonic()
    assert not publish(parts, "t:nobody", key)
    assert time.monotonic() - started < 1.0  # the wait was dropped with its connection, not sat out
    assert not parts.wait.connected


def test_finished_reply_lists_go_with_the_next_publish(parts: Parts) -> None:
    parts.admin.rpush("t:fmr:reply:old", b"x")
    parts.unlinks.add("t:fmr:reply:old")
    assert not publish(parts, "t:nobody", names.reply_key("t", new_id()))
    assert not parts.admin.exists("t:fmr:reply:old")
    assert parts.unlinks.take() == []


def test_keys_whose_delete_failed_wait_for_a_later_one(parts: Parts) -> None:
    parts.admin.rpush("t:fmr:reply:kept", b"x")
    parts.unlinks.add("t:fmr:reply:kept")
    parts.pipelined.close(for_good=True)
    with pytest.raises(redis.ConnectionError):
        parts.unlinks.flush(parts.pipelined)
    assert parts.unlinks.take() == ["t:fmr:reply:kept"]  # given back, not lost


def test_garbage_on_the_waiting_connection_is_a_lost_connection(redis_url: str, redis_server: RedisServer) -> None:
    """Bytes that are not RESP (a confused proxy, a peer that is no Redis) raise redis-py's InvalidResponse: the
    wait starts again on a new connection and finds the answer."""
    with proxy_to(redis_server.host, redis_server.port) as proxy:
        client = redis.Redis.from_url(proxy.url, socket_timeout=5, client_name="garbage-test")
        admin = redis_server.admin()
        pipelined = PipelinedConnection(redis.Redis.from_url(redis_url))
        wait = ReplyListWait(client, pipelined, DeferredUnlink(), Intake(Counters(), 1 << 20), wait_slice=2.0)
        call_id = new_id()
        key = names.reply_key("t", call_id)
        found: list[object] = []

        def waiting() -> None:
            assert wait.take()
            try:
                found.append(wait.wait(call_id, "test.channel", key, time.monotonic() + 10, started=False))
            finally:
                wait.release()

        def waiting_ids() -> list[str]:
            clients = admin.client_list()
            return [c["id"] for c in clients if c.get("name") == "garbage-test" and c.get("cmd") == "blmove"]

        thread = threading.Thread(target=waiting)
        thread.start()
        wait_until(lambda: len(waiting_ids()) == 1)
        first = waiting_ids()
        proxy.inject(b"?not RESP\r\n")
        wait_until(lambda: len(waiting_ids()) == 1 and waiting_ids() != first)  # waiting again, on a new one
        admin.rpush(key, answer(call_id, 9))
        thread.join(10)
        wait.close(5)
        pipelined.close(5, for_good=True)
    assert [getattr(envelope, "body", None) for envelope in found] == [{"value": 9}]


def test_a_malformed_answer_in_the_list_is_dropped_and_counted(parts: Parts) -> None:
    """Anything a writer with access to the list pushes (here a kind that is a list) is skipped, never raised."""
    call_id = new_id()
    key = names.reply_key("t", call_id)
    parts.admin.rpush(key, orjson.dumps({"v": 1, "kind": ["reply"], "id": call_id, "channel": "c", "body": 1}))
    threading.Timer(0.1, parts.admin.rpush, (key, answer(call_id, 4))).start()
    found = wait_alone(parts, call_id, key)
    assert found is not None
    assert found.body == {"value": 4}
    assert parts.counters.dropped == 1
