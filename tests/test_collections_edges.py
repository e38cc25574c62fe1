"""Typed collections at their edges: values JSON cannot carry, values that do not encode, equal dicts, Redis
errors that are not index errors, names written by someone else, a key space's scan and iteration, a priority
queue's counter, and what happens to a value taken out that does not decode, or whose reply is lost."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable

import pytest
import redis
import redis.asyncio
from pydantic import BaseModel
from redis.backoff import NoBackoff
from redis.retry import Retry

from flask_multi_redis import FlaskRedisSingle, RedisSession
from flask_multi_redis.cluster import companion_key
from flask_multi_redis.collections import (
    CollectionValueError,
    RedisHash,
    RedisKeySpace,
    RedisList,
    RedisPriorityQueue,
    RedisQueue,
    RedisSet,
)
from flask_multi_redis.collections import asyncio as async_collections

from .proxy import proxy_to
from .servers import RedisServer
from .waiting import wait_until


class Reading(BaseModel):
    value: float


class Blob(BaseModel):
    data: bytes


@pytest.mark.parametrize(
    ("value_type", "value"),
    [
        (dict, {"reading": math.inf}),
        (list, [1.0, [math.nan]]),
        (dict, {"low": (-math.inf,)}),
        (Reading, Reading(value=math.inf)),
    ],
    ids=["inf-in-dict", "nan-in-nested-list", "minus-inf-in-tuple", "inf-in-model"],
)
def test_nan_and_infinities_are_refused_not_stored_as_null(
    session: RedisSession, raw: redis.Redis, value_type: type, value: object
) -> None:
    """orjson and pydantic write NaN and the infinities as null, which would read back as None (or, in a model
    field that is not optional, as a value no read could decode)."""
    readings: RedisList[object] = RedisList(session, "readings", value_type)
    with pytest.raises(CollectionValueError, match=r"test:readings\['append'\].*NaN or an infinity"):
        readings.append(value)
    assert raw.llen("test:readings") == 0
    readings.append({"reading": None} if value_type is dict else [None] if value_type is list else Reading(value=1))
    assert raw.llen("test:readings") == 1  # a null of its own is fine


@pytest.mark.parametrize(
    ("value_type", "value"),
    [(str, "lone surrogate \ud800"), (int, 10**5000), (Blob, Blob(data=b"\xff\xfe"))],
    ids=["surrogate-str", "int-over-4300-digits", "model-with-non-utf8-bytes"],
)
def test_a_value_that_cannot_be_encoded_raises_collection_value_error(
    session: RedisSession, raw: redis.Redis, value_type: type, value: object
) -> None:
    items: RedisList[object] = RedisList(session, "unencodable", value_type)
    with pytest.raises(CollectionValueError, match=r"test:unencodable\['append'\]"):
        items.append(value)
    assert raw.llen("test:unencodable") == 0


def test_equal_dicts_are_one_member_of_a_set_and_found_in_a_list(session: RedisSession) -> None:
    """dict values are stored with their keys sorted: as in Python, key order does not make two dicts differ."""
    docs = RedisSet(session, "docs", dict)
    assert docs.add({"a": 1, "b": {"y": 2, "x": 1}}) == 1
    assert docs.add({"b": {"x": 1, "y": 2}, "a": 1}) == 0
    assert docs.len() == 1
    listed = RedisList(session, "doclist", list)
    listed.append([{"a": 1, "b": 2}])
    assert [{"b": 2, "a": 1}] in listed
    assert listed.index([{"b": 2, "a": 1}]) == 0
    assert listed.remove([{"b": 2, "a": 1}]) == 1


def test_list_set_on_a_key_of_another_type_is_not_an_index_error(session: RedisSession, raw: redis.Redis) -> None:
    raw.set("test:numbers", "a string, not a list")
    numbers = RedisList(session, "numbers", int)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        numbers[0] = 1
    raw.delete("test:numbers")
    with pytest.raises(IndexError, match=r"test:numbers\[0\]"):  # no such key
        numbers[0] = 1
    numbers.append(1)
    with pytest.raises(IndexError, match=r"test:numbers\[5\]"):  # index out of range
        numbers[5] = 1


def test_a_name_that_is_not_utf8_gives_a_typed_error(session: RedisSession, raw: redis.Redis) -> None:
    raw.hset("test:counts", b"\xff\xfe", b"1")
    counts = RedisHash(session, "counts", int)
    with pytest.raises(CollectionValueError, match="test:counts: a 2-byte name that is not UTF-8"):
        list(counts.items())
    with pytest.raises(CollectionValueError, match="test:counts: a 2-byte name that is not UTF-8"):
        list(counts)
    raw.set(b"test:space:\xff", b"x")
    with pytest.raises(CollectionValueError, match="test:space: a 12-byte name that is not UTF-8"):
        list(RedisKeySpace(session, "space", str).scan())


def test_a_key_space_scan_stays_inside_its_space(session: RedisSession) -> None:
    """Glob characters in the space's name are matched as they are (tenant[1] is not the pattern tenant1)."""
    ours = RedisKeySpace(session, "tenant[1]*?\\", str)
    RedisKeySpace(session, "tenant1", str).set("b", "not mine")
    RedisKeySpace(session, "tenant[1]*?\\x", str).set("c", "not mine either")
    ours.set("a", "mine")
    assert sorted(ours.scan()) == ["a"]
    assert dict(ours.items()) == {"a": "mine"}
    assert sorted(ours.scan("a*")) == ["a"]


def test_a_key_space_is_not_iterable_by_index(session: RedisSession) -> None:
    """Without a refusal, Python's old protocol would read space[0], space[1], ... (GET PREFIX:rkey:0, ...)."""
    space = RedisKeySpace(session, "numbered", str)
    space["0"] = "zero"
    with pytest.raises(TypeError):
        iter(space)  # type: ignore[call-overload]


def test_a_persisted_priority_queue_keeps_fifo_among_equal_priorities(session: RedisSession, raw: redis.Redis) -> None:
    """persist takes the TTL off the queue and its counter: a counter that expired would restart at 1, and later
    puts would jump ahead of older ones of the same priority."""
    jobs = RedisPriorityQueue(session, "jobs", str)
    for name in ("x1", "x2", "x3"):
        jobs.put(name, 1)
    assert jobs.expire(60)
    assert jobs.persist()
    counter = companion_key(jobs.key, "order")
    assert jobs.ttl() is None
    assert raw.pttl(counter) == -1
    jobs.put("y", 1)
    assert [jobs.get_nowait() for _ in range(4)] == ["x1", "x2", "x3", "y"]


@pytest.mark.parametrize("take", ["get", "get_nowait", "list-pop", "set-pop", "priority-get"])
def test_a_value_taken_out_that_does_not_decode_is_kept_not_lost(
    session: RedisSession, raw: redis.Redis, take: str
) -> None:
    bad = b'{"value": "not a number"}'
    taking: Callable[[], object]
    if take == "list-pop":
        raw.rpush("test:inbox", b'{"value": 2.0}', bad)
        taking = RedisList(session, "inbox", Reading).pop
    elif take == "set-pop":
        raw.sadd("test:inbox", bad)
        taking = RedisSet(session, "inbox", Reading).pop
    elif take == "priority-get":
        raw.zadd("test:inbox", {b"00000000000000000001:" + bad: 1})
        taking = RedisPriorityQueue(session, "inbox", Reading).get_nowait
    else:
        raw.rpush("test:inbox", bad, b'{"value": 2.0}')
        inbox = RedisQueue(session, "inbox", Reading)
        taking = inbox.get_nowait if take == "get_nowait" else lambda: inbox.get(timeout=1)
    kept = companion_key("test:inbox", "invalid")
    with pytest.raises(CollectionValueError, match=rf"test:inbox.*does not decode.*kept in {re.escape(kept)}"):
        taking()
    assert raw.lrange(kept, 0, -1) == [bad]
    if take in ("get", "get_nowait", "list-pop"):
        assert taking() == Reading(value=2.0)  # the next value is there as before


def test_an_asyncio_pop_that_does_not_decode_keeps_the_value(redis_url: str, raw: redis.Redis) -> None:
    raw.rpush("inbox", b"not json")

    async def take() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        try:
            with pytest.raises(CollectionValueError, match=r"kept in \{inbox\}:invalid"):
                await async_collections.RedisQueue(client, "inbox", dict).get(timeout=1)
        finally:
            await client.aclose()

    asyncio.run(take())
    assert raw.lrange("{inbox}:invalid", 0, -1) == [b"not json"]


def test_a_pop_whose_reply_is_lost_on_a_client_without_retries_raises(
    redis_server: RedisServer, raw: redis.Redis
) -> None:
    """A pop is at most once: Redis took the value, its reply was lost with the connection. With redis-py's
    retries (on by default) the next value would be taken without a word; without them the loss is told."""
    raw.delete("test:inbox")
    with proxy_to(redis_server.host, redis_server.port) as proxy:
        ext = FlaskRedisSingle(
            {"URL": proxy.url, "PREFIX": "test", "SOCKET_TIMEOUT": 1, "RETRY": Retry(NoBackoff(), 0)}
        )
        session = ext.getRedis()
        try:
            inbox = RedisQueue(session, "inbox", str)
            inbox.put("first")
            inbox.put("second")
            proxy.lose_reply_to(b"BLPOP")
            with pytest.raises((redis.ConnectionError, redis.TimeoutError)):
                inbox.get(timeout=5)
            wait_until(lambda: proxy.lost_replies == 1)
            assert raw.lrange("test:inbox", 0, -1) == [b"second"]
        finally:
            session.connection_pool.disconnect()
