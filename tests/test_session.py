"""RedisSession against a real server: what it is, and prefixed publish and subscribe."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from redis.client import PubSub

from flask_multi_redis import RedisSession, ReplyTimeout

from .sessions import WAIT, Reply, make_session, next_data, raw_subscriber

# --- the session itself ----------------------------------------------------------------------------------------


def test_session_is_a_redis_client(session: RedisSession) -> None:
    assert isinstance(session, redis.Redis)
    assert session.ping() is True
    session.set("key", "value")
    assert session.get("key") == b"value"


def test_session_name_database_and_prefix(redis_url: str, sessions: list[RedisSession]) -> None:
    default = make_session(redis_url)
    named = make_session(redis_url, NAME="cache", PREFIX="prod", DATABASE=2)
    sessions += [default, named]
    assert (default.name, default.database, default.prefix) == ("default", 0, "")
    assert (named.name, named.database, named.prefix) == ("cache", 2, "prod")
    assert named.channel("chan") == "prod:chan"
    assert default.channel("chan") == "chan"
    text = repr(named)
    assert "'cache'" in text
    assert "db=2" in text
    assert "prefix='prod'" in text


def test_database_from_url_path(redis_url: str, sessions: list[RedisSession]) -> None:
    session = make_session(f"{redis_url}/5")
    sessions.append(session)
    assert session.database == 5


# --- publish -----------------------------------------------------------------------------------------------------


def test_publish_applies_prefix(session: RedisSession, raw: redis.Redis) -> None:
    prefixed = raw_subscriber(raw, "test:chan")
    bare = raw_subscriber(raw, "chan")
    try:
        assert session.publish("chan", "hello") == 1
        message = next_data(prefixed)
        assert message is not None
        assert message["channel"] == b"test:chan"
        assert message["data"] == b"hello"
        # the bare subscriber's first message must be this marker, not the session's publish
        assert raw.publish("chan", b"marker") == 1
        message = next_data(bare)
        assert message is not None
        assert message["data"] == b"marker"
    finally:
        prefixed.close()
        bare.close()


def test_publish_without_prefix_uses_bare_channel(
    redis_url: str, raw: redis.Redis, sessions: list[RedisSession]
) -> None:
    session = make_session(redis_url)
    sessions.append(session)
    subscriber = raw_subscriber(raw, "chan")
    try:
        assert session.publish("chan", "plain") == 1
        message = next_data(subscriber)
        assert message is not None
        assert (message["channel"], message["data"]) == (b"chan", b"plain")
    finally:
        subscriber.close()


def test_publish_accepts_bytes_channel_name(session: RedisSession, raw: redis.Redis) -> None:
    subscriber = raw_subscriber(raw, "test:chan")
    try:
        assert session.publish(b"chan", "from bytes name") == 1
        message = next_data(subscriber)
        assert message is not None
        assert message["data"] == b"from bytes name"
    finally:
        subscriber.close()


def test_publish_returns_receiver_count(session: RedisSession, raw: redis.Redis) -> None:
    assert session.publish("chan", "nobody listens") == 0
    first = raw_subscriber(raw, "test:chan")
    try:
        assert session.publish("chan", "one listener") == 1
        second = raw_subscriber(raw, "test:chan")
        try:
            assert session.publish("chan", "two listeners") == 2
        finally:
            second.close()
    finally:
        first.close()


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        ("text", b"text"),
        (b"\x00raw", b"\x00raw"),
        (7, b"7"),
        (0.5, b"0.5"),
        ({"a": 1}, b'{"a":1}'),
        ([1, "b"], b'[1,"b"]'),
        (Reply(id=1, text="t"), b'{"id":1,"text":"t","tags":[]}'),
    ],
    ids=repr,
)
def test_publish_encodes_value(session: RedisSession, raw: redis.Redis, value: Any, wire: bytes) -> None:
    subscriber = raw_subscriber(raw, "test:chan")
    try:
        assert session.publish("chan", value) == 1
        message = next_data(subscriber)
        assert message is not None
        assert message["data"] == wire
    finally:
        subscriber.close()


# --- subscribe ---------------------------------------------------------------------------------------------------


def test_subscribe_returns_a_new_pubsub_per_call(session: RedisSession) -> None:
    with session.subscribe("chan") as first, session.subscribe("chan") as second:
        assert first is not second
        assert first.connection is not None
        assert first.connection is not second.connection
        assert session.publish("chan", "to both") == 2
        assert session.wait_for_reply(first, timeout=WAIT) == "to both"
        assert session.wait_for_reply(second, timeout=WAIT) == "to both"


def test_subscribe_uses_prefixed_names(session: RedisSession, raw: redis.Redis) -> None:
    with session.subscribe("a", "b") as pubsub:
        assert set(pubsub.channels) == {b"test:a", b"test:b"}
        assert raw.pubsub_numsub("test:a", "test:b", "a", "b") == [
            (b"test:a", 1),
            (b"test:b", 1),
            (b"a", 0),
            (b"b", 0),
        ]


def test_subscribe_is_confirmed_on_return(session: RedisSession) -> None:
    with session.subscribe("a", "b", "c") as pubsub:
        # the server already knows the subscriptions ...
        assert session.publish("c", "right away") == 1
        # ... and the confirmations were consumed: the next message is the data itself
        message = pubsub.get_message(timeout=WAIT)
        assert message is not None
        assert message["type"] == "message"
        assert message["channel"] == b"test:c"
        assert message["data"] == b"right away"


def test_subscribe_without_channels_returns_unsubscribed_pubsub(session: RedisSession) -> None:
    with session.subscribe() as pubsub:
        assert isinstance(pubsub, PubSub)
        assert not pubsub.channels
        assert not pubsub.subscribed


def test_subscribe_with_repeated_channel(redis_url: str, sessions: list[RedisSession]) -> None:
    session = make_session(redis_url, PREFIX="test", client_kwargs={"socket_timeout": 0.5})
    sessions.append(session)
    with session.subscribe("chan", "chan") as pubsub:
        assert session.publish("chan", "once") == 1
        assert session.wait_for_reply(pubsub, timeout=WAIT) == "once"


def test_prefixes_isolate_environments(redis_url: str, sessions: list[RedisSession]) -> None:
    dev = make_session(redis_url, PREFIX="dev")
    prod = make_session(redis_url, PREFIX="prod")
    sessions += [dev, prod]
    with prod.subscribe("chan") as pubsub:
        assert dev.publish("chan", "from dev") == 0
        assert prod.publish("chan", "from prod") == 1
        # had the dev message arrived, it would come first
        assert prod.wait_for_reply(pubsub, timeout=WAIT) == "from prod"
        with pytest.raises(ReplyTimeout):
            prod.wait_for_reply(pubsub, timeout=0.2)


def test_database_index_and_cross_database_pubsub(
    redis_url: str, raw: redis.Redis, sessions: list[RedisSession]
) -> None:
    db3 = make_session(redis_url, DATABASE=3, PREFIX="test")
    db0 = make_session(redis_url, PREFIX="test")
    sessions += [db3, db0]
    assert db3.database == 3
    db3.set("where", "three")
    assert raw.get("where") is None
    with redis.Redis.from_url(redis_url, db=3) as raw3:
        assert raw3.get("where") == b"three"
    # pub/sub ignores the database
    with db3.subscribe("chan") as pubsub:
        assert db0.publish("chan", "from db 0") == 1
        assert db3.wait_for_reply(pubsub, timeout=WAIT) == "from db 0"
    with db0.subscribe("chan") as pubsub:
        assert db3.publish("chan", "from db 3") == 1
        assert db0.wait_for_reply(pubsub, timeout=WAIT) == "from db 3"
