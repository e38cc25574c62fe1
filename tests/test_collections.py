"""Typed collections against a real redis-server: purse's README examples with ``await`` dropped, Python's
protocols, the edge cases purse and pottery are known to get wrong, typed errors that write nothing, TTLs."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio
from pydantic import BaseModel

from flask_multi_redis import FlaskRedisSingle, RedisSession
from flask_multi_redis.cluster import companion_key
from flask_multi_redis.collections import (
    CollectionValueError,
    RedisHash,
    RedisKeySpace,
    RedisLifoQueue,
    RedisList,
    RedisPriorityQueue,
    RedisQueue,
    RedisSet,
    RedisSortedSet,
)
from flask_multi_redis.collections.base import PAGE
from flask_multi_redis.lock import Redlock

from .conftest import ROOT
from .sides import Loop, Side
from .topologies import Cluster
from .waiting import wait_until


class Plant(BaseModel):
    name: str
    healthiness: float
    tasty: bool


@pytest.fixture(params=["sync", "asyncio"])
def side(request: pytest.FixtureRequest, redis_url: str) -> Iterator[Side]:
    """Each behaviour test runs on the sync collections and on their asyncio twins."""
    made = Side(request.param, redis_url, Loop() if request.param == "asyncio" else None)
    yield made
    made.close()


@pytest.fixture
def red_con(redis_url: str) -> RedisSession:
    """A session with a PREFIX: every collection's key gets it."""
    return FlaskRedisSingle({"URL": redis_url, "PREFIX": "env"}).getRedis()


def test_purses_redis_list_example(side: Side) -> None:
    local_list = ["a", "b", "c", "d", "e", "f"]
    redis_list = side.make(RedisList, "redis_list", str)
    redis_list.clear()
    redis_list.extend(local_list)
    assert [x for x in redis_list] == local_list
    assert redis_list.contains("f")
    assert not redis_list.contains("g")
    assert redis_list.index("c") == 2
    assert redis_list.index("g") is None  # unlike a Python list, which raises ValueError
    assert redis_list.slice(2, 5) == ["c", "d", "e"]
    redis_list.insert(2, "x")
    redis_list.insert(-2, "y")
    assert redis_list.getitem(2) == "x"
    assert redis_list.getitem(-3) == "y"
    redis_list.appendleft("z")
    assert redis_list.pop() == "f"
    assert redis_list.popleft() == "z"


def test_keys_get_the_sessions_prefix(red_con: RedisSession) -> None:
    RedisList(red_con, "redis_list", str).append("a")
    assert red_con.exists("env:redis_list")
    RedisKeySpace(red_con, "sessions", str).set("user:1", "fern")
    assert red_con.exists("env:sessions:user:1")


def test_purses_redis_hash_example(side: Side) -> None:
    redis_hash = side.make(RedisHash, "redis_hash", Plant)
    redis_hash.clear()
    plants = [
        Plant(name="spinach", healthiness=9.8, tasty=False),
        Plant(name="broccoli", healthiness=12.2, tasty=True),
        Plant(name="lettuce", healthiness=3, tasty=False),
        Plant(name="avocado", healthiness=8, tasty=True),
    ]
    redis_hash.update({p.name: p for p in plants})
    carrot = Plant(name="carrot", healthiness=5, tasty=False)
    redis_hash.set("carrot", carrot)
    assert redis_hash.len() == 5
    p = redis_hash.get("spinach")
    assert p is not None
    assert p.tasty is False
    assert dict(redis_hash.items()) == {**{p.name: p for p in plants}, "carrot": carrot}
    assert redis_hash.todict() == dict(redis_hash.items())
    assert sorted(redis_hash.keys()) == sorted(redis_hash.todict())


def test_list_edge_cases(side: Side) -> None:
    numbers = side.make(RedisList, "numbers", int)
    numbers.clear()
    assert numbers.pop() is None
    assert numbers.popleft() is None
    assert numbers.index(1) is None
    numbers.insert(0, 5)  # into an empty list
    numbers.insert(0, 4)  # index 0 of a non-empty one
    numbers.insert(-1, 9)  # before the last, as list.insert
    numbers.insert(100, 7)  # past the end: at the end
    numbers.insert(-100, 1)  # before the start: at the start
    expected = [1, 4, 9, 5, 7]
    assert list(numbers) == expected
    assert numbers.getitem(0) == 1
    assert numbers.getitem(-1) == 7
    assert numbers.slice(1, -1) == expected[1:-1]
    assert numbers.slice(-2) == expected[-2:]
    assert numbers.slice(3, 1) == []
    assert numbers.slice(0, 0) == []
    with pytest.raises(IndexError):
        numbers.getitem(5)
    numbers.set(1, 40)
    assert numbers.getitem(1) == 40
    with pytest.raises(IndexError):
        numbers.set(50, 1)
    assert numbers.remove(12345) == 0  # a missing value: no error
    assert numbers.remove(9) == 1
    assert numbers.len() == 4
    assert numbers.extend([]) == 4


def test_list_protocol(red_con: RedisSession) -> None:
    numbers = RedisList(red_con, "numbers", int)
    numbers.extend([1, 4, 9, 5, 7])
    expected = [1, 4, 9, 5, 7]
    assert numbers[0] == 1
    assert numbers[-1] == 7
    assert numbers[1:-1] == expected[1:-1]
    assert numbers[-2:] == expected[-2:]
    assert numbers[::2] == expected[::2]
    assert numbers[3:1] == []
    numbers[1] = 40
    assert numbers[1] == 40
    with pytest.raises(IndexError):
        numbers[50] = 1
    assert len(numbers) == 5
    assert 7 in numbers
    assert "7" not in numbers  # not of the list's type: simply not in it


def test_a_value_of_the_wrong_type_is_refused_and_nothing_is_written(side: Side) -> None:
    plants: RedisList[Plant] = side.make(RedisList, "plants", Plant)
    plants.clear()
    good = Plant(name="kale", healthiness=10, tasty=False)
    where = re.escape(plants.key)
    with pytest.raises(CollectionValueError, match=where + r"\[1\].*does not validate as Plant"):
        plants.extend([good, {"name": "weed"}])  # type: ignore[list-item]
    assert plants.len() == 0  # not even the first one
    plants.append({"name": "kale", "healthiness": 10, "tasty": False})  # type: ignore[arg-type]
    assert plants.getitem(0) == good
    counts: RedisHash[int] = side.make(RedisHash, "counts", int)
    where = re.escape(counts.key)
    with pytest.raises(CollectionValueError, match=where + r"\['b'\]: the value is a str, not a int"):
        counts.update({"a": 1, "b": "two"})  # type: ignore[dict-item]
    assert counts.len() == 0
    FlaskRedisSingle({"URL": side.url}).getRedis().hset(counts.key, "c", "not a number")  # written by someone else
    with pytest.raises(CollectionValueError, match=where + r"\['c'\]: the value holds what is not a int"):
        counts.get("c")


def test_hash_update_with_many_keys_in_one_command(side: Side) -> None:
    scores = side.make(RedisHash, "scores", float)
    scores.clear()
    assert scores.update({f"player-{n}": n / 2 for n in range(2000)}) == 2000
    assert scores.len() == 2000
    assert scores.get("player-3") == 1.5
    assert scores.get("nobody", 0.0) == 0.0
    assert scores.getmany("player-1", "nobody") == [0.5, None]
    assert sum(1 for _ in scores) == 2000  # its fields, by HSCAN, in pages
    assert scores.delete("player-1", "nobody") == 1
    assert not scores.contains("player-1")


def test_hash_protocol(red_con: RedisSession) -> None:
    scores = RedisHash(red_con, "scores", float)
    scores["a"] = 1.5
    assert scores["a"] == 1.5
    assert "a" in scores
    assert len(scores) == 1
    assert list(scores) == ["a"]
    del scores["a"]
    with pytest.raises(KeyError):
        del scores["a"]
    with pytest.raises(KeyError):
        scores["a"]
    assert "a" not in scores


def test_iteration_reads_in_pages(side: Side) -> None:
    many = side.make(RedisList, "many", int)
    many.clear()
    many.extend(range(PAGE * 2 + 7))
    assert list(many) == list(range(PAGE * 2 + 7))
    ranked = side.make(RedisSortedSet, "ranked", int)
    ranked.update({n: n for n in range(PAGE + 1)})
    assert list(ranked) == list(range(PAGE + 1))


def test_sets_and_sorted_sets(side: Side) -> None:
    tags = side.make(RedisSet, "tags", str)
    tags.clear()
    assert tags.add("a", "b", "c") == 3
    assert tags.add("a") == 0
    assert tags.update(["c", "d"]) == 1
    assert tags.contains("b")
    assert tags.remove("missing") == 0
    assert tags.remove("d") == 1
    assert sorted(tags) == ["a", "b", "c"]
    assert sorted(tags.members()) == ["a", "b", "c"]
    assert tags.len() == 3
    assert tags.pop() in {"a", "b", "c"}
    ranks = side.make(RedisSortedSet, "ranks", str)
    ranks.clear()
    ranks.update({"low": 1, "high": 10, "mid": 5})
    assert ranks.add("lowest", 0)
    assert not ranks.add("lowest", 0.5)  # a new score, not a new member
    assert list(ranks) == ["lowest", "low", "mid", "high"]
    assert ranks.rank("high") == 3
    assert ranks.score("nobody") is None
    assert ranks.score("lowest") == 0.5
    assert ranks.by_score(2, 10) == ["mid", "high"]
    assert ranks.range(0, 0, with_scores=True) == [("lowest", 0.5)]
    assert ranks.remove("lowest", "nobody") == 1
    assert ranks.len() == 3


def test_set_protocol(red_con: RedisSession) -> None:
    tags, ranks = RedisSet(red_con, "tags", str), RedisSortedSet(red_con, "ranks", str)
    tags.add("a")
    ranks.add("a", 1)
    assert "a" in tags
    assert "a" in ranks
    assert 1 not in tags  # not of the set's type: simply not in it
    assert 1 not in ranks
    assert len(tags) == len(ranks) == 1


def test_queues_fifo_lifo_and_priority(side: Side) -> None:
    fifo, lifo = side.make(RedisQueue, "fifo", int), side.make(RedisLifoQueue, "lifo", int)
    jobs = side.make(RedisPriorityQueue, "jobs", str)
    for q in (fifo, lifo, jobs):
        q.clear()
    with pytest.raises(queue.Empty):
        jobs.get_nowait()  # an empty priority queue: queue.Empty, not a crash
    with pytest.raises(queue.Empty):
        fifo.get(block=False)
    assert jobs.empty()
    for n in range(3):
        fifo.put(n)
        lifo.put(n)
    assert fifo.qsize() == 3
    assert [fifo.get() for _ in range(3)] == [0, 1, 2]
    assert [lifo.get() for _ in range(3)] == [2, 1, 0]
    for name, priority in [("b1", 2), ("a1", 1), ("b2", 2), ("a2", 1), ("c", 3)]:
        jobs.put(name, priority)
    assert jobs.qsize() == 5
    assert not jobs.empty()
    assert [jobs.get() for _ in range(5)] == ["a1", "a2", "b1", "b2", "c"]  # FIFO among equal priorities
    with pytest.raises(queue.Empty):
        fifo.get(timeout=0.1)


def test_a_blocking_get_waits_for_a_put(side: Side) -> None:
    inbox = side.make(RedisQueue, "inbox", dict)
    inbox.clear()
    got: list[dict[str, int]] = []
    reader = threading.Thread(target=lambda: got.append(inbox.get(timeout=10)))
    reader.start()
    server = FlaskRedisSingle({"URL": side.url}).getRedis()
    wait_until(lambda: any(c.get("cmd") == "blpop" for c in server.client_list()))  # the put comes after it
    inbox.put({"n": 1})
    reader.join(10)
    assert got == [{"n": 1}]


def test_ttls_and_the_key_space(side: Side) -> None:
    numbers = side.make(RedisList, "short-lived", int)
    numbers.clear()
    assert numbers.ttl() is None
    assert not numbers.expire(30)  # no such key yet
    numbers.append(1)
    assert numbers.expire(30)
    left = numbers.ttl()
    assert left is not None
    assert 29 < left <= 30
    assert numbers.persist()
    jobs = side.make(RedisPriorityQueue, "expiring-jobs", str)
    jobs.put("a", 1)
    assert jobs.expire(30)
    sessions = side.make(RedisKeySpace, "sessions", Plant)
    sessions.set("user:1", Plant(name="fern", healthiness=1, tasty=False), ttl=60)
    sessions.set("user:2", Plant(name="moss", healthiness=2, tasty=False))
    sessions.set("other:3", Plant(name="ivy", healthiness=3, tasty=False))
    assert not sessions.set("user:1", Plant(name="x", healthiness=0, tasty=True), only_new=True)
    assert sorted(sessions.scan("user:*")) == ["user:1", "user:2"]
    assert sorted(name for name, _ in sessions.items()) == ["other:3", "user:1", "user:2"]
    assert sessions.ttl("user:2") is None
    left = sessions.ttl("user:1")
    assert left is not None
    assert 59 < left <= 60
    assert sessions.expire("user:2", 10)
    user = sessions.get("user:1")
    assert user is not None
    assert user.name == "fern"
    assert sessions.get("nobody") is None
    assert [plant.name for plant in sessions.getmany("user:2", "user:9") if plant] == ["moss"]
    assert sessions.contains("other:3")
    assert sessions.delete("other:3", "nobody") == 1
    assert not sessions.contains("other:3")


def test_key_space_protocol(red_con: RedisSession) -> None:
    sessions = RedisKeySpace(red_con, "sessions", str)
    sessions["a"] = "fern"
    assert sessions["a"] == "fern"
    assert "a" in sessions
    del sessions["a"]
    with pytest.raises(KeyError):
        sessions["a"]
    with pytest.raises(KeyError):
        del sessions["a"]


def test_collections_and_a_lock_on_a_cluster_session(redis_cluster: Cluster) -> None:
    """On a Redis Cluster every collection is one key, or keys of one slot (a priority queue's counter, a
    lock's fence), so their scripts run there."""
    ext = FlaskRedisSingle({"URL": redis_cluster.url, "PREFIX": "c"})
    cluster = ext.getCluster()
    try:
        letters = RedisList(cluster, "letters", str)
        letters.clear()
        letters.extend(["a", "b", "d"])
        letters.insert(2, "c")
        assert list(letters) == ["a", "b", "c", "d"]
        garden = RedisHash(cluster, "garden", int)
        garden.update({f"bed-{n}": n for n in range(50)})
        assert garden.getmany("bed-3", "bed-49") == [3, 49]
        jobs = RedisPriorityQueue(cluster, "jobs", str)
        jobs.clear()
        jobs.put("second", 2)
        jobs.put("first", 1)
        assert [jobs.get(timeout=1), jobs.get_nowait()] == ["first", "second"]
        space = RedisKeySpace(cluster, "space", str)
        for n in range(20):  # on every shard
            space.set(f"item-{n}", str(n))
        assert sorted(space.scan("item-*"), key=lambda name: int(name[5:])) == [f"item-{n}" for n in range(20)]
        assert space.getmany("item-1", "item-19", "none") == ["1", "19", None]  # keys of several slots
        with Redlock("c:job", cluster, ttl=5) as lock:
            assert lock.token is not None
            assert lock.locked()
    finally:
        cluster.close()


def test_asyncio_collections_on_a_cluster(redis_cluster: Cluster) -> None:
    """The asyncio twins on a ``redis.asyncio.RedisCluster``: one key (or one slot) each, and a key space
    scanned on every primary."""
    side = Side("asyncio", redis_cluster.url, Loop())
    try:
        cluster = side.closing(redis.asyncio.RedisCluster(host="127.0.0.1", port=redis_cluster.nodes[0].port))
        letters = side.make(RedisList, "async-letters", str, client=cluster)
        letters.clear()
        letters.extend(["a", "b", "d"])
        letters.insert(2, "c")
        assert list(letters) == ["a", "b", "c", "d"]
        jobs = side.make(RedisPriorityQueue, "async-jobs", str, client=cluster)
        jobs.clear()
        jobs.put("second", 2)
        jobs.put("first", 1)
        assert [jobs.get(timeout=1), jobs.get_nowait()] == ["first", "second"]
        space = side.make(RedisKeySpace, "async-space", int, client=cluster)
        for n in range(20):
            space.set(f"item-{n}", n)
        assert sorted(value for _, value in space.items("item-*")) == list(range(20))
        assert space.getmany("item-1", "item-19", "none") == [1, 19, None]
    finally:
        side.close()


def test_insert_at_the_start_keeps_the_ttl_and_long_tails_move(side: Side) -> None:
    numbers = side.make(RedisList, "long", int)
    numbers.clear()
    numbers.extend(range(10_000))
    numbers.expire(60)
    numbers.insert(0, -1)
    numbers.insert(1, -2)  # 10,000 elements after it: more than one unpack takes
    assert numbers.ttl() is not None
    assert numbers.slice(0, 3) == [-1, -2, 0]
    assert numbers.len() == 10_002
    assert numbers.getitem(-1) == 9_999


def test_a_client_that_decodes_responses(side: Side) -> None:
    text = side.client(DECODE_RESPONSES=True)
    jobs = side.make(RedisPriorityQueue, "text-jobs", str, client=text)
    jobs.clear()
    jobs.put("b", 2)
    jobs.put("a", 1)
    assert [jobs.get_nowait(), jobs.get(timeout=1)] == ["a", "b"]
    names = side.make(RedisHash, "text-names", int, client=text)
    names.update({"a": 1, "b": 2})
    assert dict(names.items()) == {"a": 1, "b": 2}
    space = side.make(RedisKeySpace, "text-space", str, client=text)
    space.set("k", "v")
    assert list(space.scan()) == ["k"]


@pytest.mark.parametrize(
    ("key", "companion"),
    [("a:b", "{a:b}:order"), ("{user}:jobs", "{user}:jobs:order"), ("x{t}y", "x{t}y:order")],
)
def test_companion_keys_share_the_slot(key: str, companion: str) -> None:
    assert companion_key(key, "order") == companion


@pytest.mark.parametrize("key", ["a}b", "{}x}", "a{b"])
def test_braces_that_make_no_tag_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="no hash tag"):
        companion_key(key, "order")


def test_collections_in_a_gevent_process(redis_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.apps.collections_gevent", redis_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    ended = json.loads(done.stdout)
    assert ended["numbers"] == list(range(100))
    assert ended["counts"] == {f"job-{n}": 10 for n in range(10)}
    assert ended["got"] == ["wake"]
    assert ended["appended_while_waiting"] is True


def test_a_client_of_the_other_kind_is_refused(redis_url: str) -> None:
    with pytest.raises(TypeError, match=r"use flask_multi_redis\.collections\.asyncio\.RedisList"):
        RedisList(redis.asyncio.Redis.from_url(redis_url), "k", int)
    from flask_multi_redis.collections import asyncio as async_collections

    with pytest.raises(TypeError, match=r"use flask_multi_redis\.collections\.RedisHash"):
        async_collections.RedisHash(redis.Redis.from_url(redis_url), "k", int)
