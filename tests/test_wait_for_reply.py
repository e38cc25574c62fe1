"""RedisSession.wait_for_reply and publish_and_wait_reply: typed replies, one deadline, and isolation."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import pytest
import redis

from flask_multi_redis import DecodeError, EncodeError, FlaskRedisError, RedisSession, ReplyTimeout
from flask_multi_redis.broker import NoResponders

from .sessions import WAIT, Reply, next_data, raw_subscriber
from .waiting import wait_until

# --- wait_for_reply ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "return_type"),
    [
        ("hello ✓", str),
        (b"\x00\xff bytes", bytes),
        (-42, int),
        (3.25, float),
        (True, bool),
        ({"a": [1, 2], "b": None}, dict),
        ([1, "two", {"three": 3}], list),
        (Reply(id=7, text="seven", tags=["x"]), Reply),
    ],
    ids=repr,
)
def test_wait_for_reply_returns_decoded_value(session: RedisSession, value: Any, return_type: type[Any]) -> None:
    with session.subscribe("reply") as pubsub:
        assert session.publish("reply", value) == 1
        result = session.wait_for_reply(pubsub, return_type, timeout=WAIT)
        assert type(result) is return_type
        assert result == value


def test_wait_for_reply_large_model(session: RedisSession) -> None:
    big = Reply(id=1, text="x" * 10_000, tags=[f"tag-{i}" for i in range(100)])
    with session.subscribe("reply") as pubsub:
        assert session.publish("reply", big) == 1
        assert session.wait_for_reply(pubsub, Reply, timeout=WAIT) == big


def test_wait_for_reply_returns_messages_in_order(session: RedisSession) -> None:
    with session.subscribe("reply") as pubsub:
        for i in range(5):
            assert session.publish("reply", i) == 1
        assert [session.wait_for_reply(pubsub, int, timeout=WAIT) for _ in range(5)] == [0, 1, 2, 3, 4]


def test_wait_for_reply_encoding(session: RedisSession) -> None:
    with session.subscribe("reply") as pubsub:
        assert session.publish("reply", "café".encode("latin-1")) == 1
        assert session.wait_for_reply(pubsub, str, timeout=WAIT, encoding="latin-1") == "café"
        assert session.publish("reply", "café".encode("latin-1")) == 1
        with pytest.raises(DecodeError, match="str"):
            session.wait_for_reply(pubsub, str, timeout=WAIT)


def test_wait_for_reply_on_pattern_subscription(session: RedisSession) -> None:
    with session.subscribe() as pubsub:
        pubsub.psubscribe(session.channel("events.*"))
        confirmation = pubsub.get_message(timeout=WAIT)
        assert confirmation is not None
        assert confirmation["type"] == "psubscribe"
        assert session.publish("events.1", {"n": 1}) == 1
        assert session.wait_for_reply(pubsub, dict, timeout=WAIT) == {"n": 1}


def test_wait_for_reply_timeout_raises_reply_timeout(session: RedisSession) -> None:
    timeout = 0.3
    with session.subscribe("reply") as pubsub:
        start = time.monotonic()
        with pytest.raises(ReplyTimeout) as caught:
            session.wait_for_reply(pubsub, timeout=timeout)
        elapsed = time.monotonic() - start
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, FlaskRedisError)
    assert timeout <= elapsed <= timeout + 0.5


def test_wait_for_reply_allow_error_returns_none_on_timeout(session: RedisSession) -> None:
    timeout = 0.3
    with session.subscribe("reply") as pubsub:
        start = time.monotonic()
        assert session.wait_for_reply(pubsub, timeout=timeout, allow_error=True) is None
        elapsed = time.monotonic() - start
    assert timeout <= elapsed <= timeout + 0.5


def test_wait_for_reply_undecodable_raises_decode_error(session: RedisSession) -> None:
    payload = b"SECRET-PAYLOAD-123"
    with session.subscribe("reply") as pubsub:
        assert session.publish("reply", payload) == 1
        with pytest.raises(DecodeError) as caught:
            session.wait_for_reply(pubsub, int, timeout=WAIT)
    assert "int" in str(caught.value)
    assert payload.decode() not in str(caught.value)


def test_wait_for_reply_allow_error_returns_none_on_undecodable(session: RedisSession) -> None:
    with session.subscribe("reply") as pubsub:
        assert session.publish("reply", b"abc") == 1
        assert session.publish("reply", b"12") == 1
        start = time.monotonic()
        assert session.wait_for_reply(pubsub, int, timeout=WAIT, allow_error=True) is None
        # it returned on the bad message, not at the deadline ...
        assert time.monotonic() - start < WAIT / 2
        # ... and consumed only that one
        assert session.wait_for_reply(pubsub, int, timeout=WAIT) == 12


@pytest.mark.parametrize("noise", ["handled", "foreign"])
def test_wait_for_reply_timeout_is_one_overall_deadline(session: RedisSession, raw: redis.Redis, noise: str) -> None:
    # Steady traffic the waiter must skip neither extends nor cuts short the deadline.
    # "handled": messages on a channel subscribed with a handler, for which get_message returns None.
    # "foreign": messages on a channel this PubSub no longer counts as its own (dropped from
    # pubsub.channels), for which get_message returns a message that wait_for_reply must skip.
    timeout = 0.5
    handled: list[Any] = []
    with session.subscribe("reply", "noise") as pubsub:
        if noise == "handled":
            pubsub.subscribe(**{session.channel("noise"): handled.append})
        else:
            del pubsub.channels[session.channel("noise").encode()]
        # subscribe/unsubscribe confirmations for the waiter to skip as well
        pubsub.subscribe(session.channel("extra"))
        pubsub.unsubscribe(session.channel("extra"))

        stop = threading.Event()
        delivered: list[int] = []

        def publish_noise() -> None:
            # Noise for four times the timeout: a waiter that restarted its timeout would outlast it.
            end = time.monotonic() + 4 * timeout
            while not stop.is_set() and time.monotonic() < end:
                delivered.append(raw.publish("test:noise", b"noise"))
                stop.wait(0.01)

        thread = threading.Thread(target=publish_noise)
        thread.start()
        try:
            start = time.monotonic()
            with pytest.raises(ReplyTimeout):
                session.wait_for_reply(pubsub, timeout=timeout)
            elapsed = time.monotonic() - start
        finally:
            stop.set()
            thread.join(WAIT)
        assert not thread.is_alive()
    assert timeout <= elapsed <= timeout + 0.5
    assert sum(delivered) >= 10  # the waiter really was exposed to steady traffic
    if noise == "handled":
        assert len(handled) >= 10


# --- isolation ---------------------------------------------------------------------------------------------------


def test_concurrent_waiters_receive_only_their_own_messages(session: RedisSession) -> None:
    rounds = 50
    for round_number in range(rounds):
        results: dict[str, Any] = {}
        ready = {name: threading.Event() for name in ("left", "right")}

        def wait(name: str, results: dict[str, Any] = results, ready: dict[str, threading.Event] = ready) -> None:
            try:
                with session.subscribe(name) as pubsub:
                    ready[name].set()
                    results[name] = session.wait_for_reply(pubsub, timeout=WAIT)
            except Exception as exc:  # reported by the main thread
                results[name] = exc
                ready[name].set()

        threads = [threading.Thread(target=wait, args=(name,)) for name in ready]
        for thread in threads:
            thread.start()
        try:
            assert all(event.wait(WAIT) for event in ready.values())
            assert session.publish("right", f"right-{round_number}") == 1
            assert session.publish("left", f"left-{round_number}") == 1
        finally:
            for thread in threads:
                thread.join(WAIT)
        assert not any(thread.is_alive() for thread in threads)
        assert results == {"left": f"left-{round_number}", "right": f"right-{round_number}"}


def test_waiter_ignores_other_channel(session: RedisSession) -> None:
    with session.subscribe("x") as pubsub:
        assert session.publish("y", "not for x") == 0
        with pytest.raises(ReplyTimeout):
            session.wait_for_reply(pubsub, timeout=0.3)
        assert session.publish("x", "for x") == 1
        assert session.wait_for_reply(pubsub, timeout=WAIT) == "for x"


def test_message_in_flight_before_unsubscribe_is_not_returned(session: RedisSession) -> None:
    with session.subscribe("x", "y") as pubsub:
        # The server queues "stale" ahead of the UNSUBSCRIBE confirmation, deterministically.
        assert session.publish("x", "stale") == 1
        pubsub.unsubscribe(session.channel("x"))
        assert session.publish("y", "fresh") == 1
        assert session.wait_for_reply(pubsub, timeout=WAIT) == "fresh"


# --- decode_responses=True ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "return_type"),
    [
        ("hello ✓", str),
        ({"a": [1, "é"]}, dict),
        (Reply(id=3, text="three ✓"), Reply),
        (5, int),
        (b"bytes", bytes),
    ],
    ids=repr,
)
def test_wait_for_reply_with_decode_responses(text_session: RedisSession, value: Any, return_type: type[Any]) -> None:
    with text_session.subscribe("reply") as pubsub:
        assert set(pubsub.channels) == {"test:reply"}
        assert text_session.publish("reply", value) == 1
        result = text_session.wait_for_reply(pubsub, return_type, timeout=WAIT)
        assert type(result) is return_type
        assert result == value


def test_decode_responses_waiter_ignores_other_channel(text_session: RedisSession) -> None:
    with text_session.subscribe("x") as pubsub:
        assert text_session.publish("y", "not for x") == 0
        assert text_session.publish("x", "for x") == 1
        assert text_session.wait_for_reply(pubsub, timeout=WAIT) == "for x"


def test_wait_for_reply_with_zero_timeout_returns_a_buffered_message(session: RedisSession) -> None:
    with session.subscribe("reply") as pubsub:
        assert session.publish("reply", "ready") == 1
        wait_until(lambda: session.wait_for_reply(pubsub, timeout=0, allow_error=True) == "ready", timeout=5)


# --- publish_and_wait_reply ------------------------------------------------------------------------------------


def answer_once(raw: redis.Redis, channel: str, reply: Any) -> threading.Thread:
    """A service on ``channel`` that answers one message by publishing to the channel named in its reply_to."""
    pubsub = raw_subscriber(raw, channel)

    def serve() -> None:
        try:
            message = next_data(pubsub)
            assert message is not None
            request = orjson.loads(message["data"])
            raw.publish(request["reply_to"], orjson.dumps({"echo": request, "reply": reply}))
        finally:
            pubsub.close()

    thread = threading.Thread(target=serve)
    thread.start()
    return thread


def test_publish_and_wait_reply_injects_a_reply_address(session: RedisSession, raw: redis.Redis) -> None:
    service = answer_once(raw, "test:jobs", 42)
    answer = session.publish_and_wait_reply("jobs", {"job": "sum"}, return_type=dict, timeout=WAIT)
    service.join(WAIT)
    assert answer["reply"] == 42
    assert answer["echo"]["job"] == "sum"
    assert answer["echo"]["reply_to"].startswith("test:fmr:answer:")  # prefixed, and unique per call
    assert raw.pubsub_channels("test:fmr:answer:*") == []  # its subscription is gone


def test_publish_and_wait_reply_sends_a_model(session: RedisSession, raw: redis.Redis) -> None:
    service = answer_once(raw, "test:jobs", "done")
    answer = session.publish_and_wait_reply("jobs", Reply(id=1, text="x"), return_type=dict, timeout=WAIT)
    service.join(WAIT)
    assert answer["echo"]["text"] == "x"


def test_publish_and_wait_reply_without_listeners_fails_at_once(session: RedisSession) -> None:
    started = time.monotonic()
    with pytest.raises(NoResponders):
        session.publish_and_wait_reply("nobody-here", {"job": 1}, timeout=10)
    assert time.monotonic() - started < 1.0


def test_publish_and_wait_reply_times_out(session: RedisSession, raw: redis.Redis) -> None:
    silent = raw_subscriber(raw, "test:jobs")
    try:
        with pytest.raises(ReplyTimeout):
            session.publish_and_wait_reply("jobs", {"job": 1}, timeout=0.2)
    finally:
        silent.close()


def test_publish_and_wait_reply_needs_a_mapping(session: RedisSession) -> None:
    with pytest.raises(EncodeError, match="dict or a pydantic model"):
        session.publish_and_wait_reply("jobs", "text")  # type: ignore[arg-type]


def test_publish_and_wait_reply_is_not_fooled_by_a_pattern_subscriber(session: RedisSession, raw: redis.Redis) -> None:
    monitor = raw.pubsub()
    monitor.psubscribe("test:*")
    wait_until(lambda: monitor.get_message(timeout=0.1) is not None)
    try:
        with pytest.raises(NoResponders):
            session.publish_and_wait_reply("nobody", {"x": 1}, timeout=30)
    finally:
        monitor.close()
