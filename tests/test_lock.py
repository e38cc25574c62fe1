"""Redlock against real, independent redis-server processes: mutual exclusion, quorum with servers down, release
by the owner only, extension and renewal, and fencing tokens that let a resource refuse a stale holder."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.lock import LockError, LockTimeout, Redlock

from .conftest import ROOT, ServerFactory
from .servers import RedisServer
from .waiting import wait_until


@pytest.fixture(scope="module")
def five(redis_server_factory: ServerFactory) -> list[RedisServer]:
    """Five independent servers, shared by the module's tests (each test uses keys of its own)."""
    return [redis_server_factory() for _ in range(5)]


@pytest.fixture
def masters(five: list[RedisServer]) -> Iterator[list[redis.Redis]]:
    clients = [redis.Redis(host=server.host, port=server.port, socket_timeout=1) for server in five]
    for client in clients:
        client.flushall()
    yield clients
    for client in clients:
        client.close()


def test_one_holder_at_a_time_and_release_by_the_owner_only(masters: list[redis.Redis]) -> None:
    first, second = Redlock("job", masters, ttl=5), Redlock("job", masters, ttl=5)
    assert first.acquire(blocking=False)
    assert first.owned()
    assert second.locked()  # held by another instance: locked() says so
    assert not second.acquire(blocking=False)
    with pytest.raises(LockError):
        second.release()  # it holds nothing
    assert first.locked()
    first.release()
    assert not second.locked()
    assert second.acquire(blocking=False)
    second.release()
    with pytest.raises(LockError):
        first.release()


def test_with_waits_for_the_holder_and_times_out(masters: list[redis.Redis]) -> None:
    holder = Redlock("busy", masters, ttl=5)
    holder.acquire()
    with pytest.raises(LockTimeout), Redlock("busy", masters, ttl=5, timeout=0.3):
        pass  # pragma: no cover - not reached
    threading.Timer(0.2, holder.release).start()
    started = time.monotonic()
    with Redlock("busy", masters, ttl=5, timeout=5) as waited:
        assert waited.owned()
        assert time.monotonic() - started >= 0.15


def test_ten_workers_ten_increments_each_in_order(masters: list[redis.Redis], five: list[RedisServer]) -> None:
    """Purse's lock example with threads: read the last number, pause, append it plus one, under the lock."""
    store = FlaskRedisSingle({"URL": five[0].url}).getRedis()
    store.delete("numbers")

    def job() -> None:
        lock = Redlock("numbers-lock", masters, ttl=5, timeout=30)
        for _ in range(10):
            with lock:
                last = store.lindex("numbers", -1)
                time.sleep(0.002)  # the work the lock protects, long enough for the others to try
                store.rpush("numbers", int(last) + 1 if last is not None else 1)

    workers = [threading.Thread(target=job) for _ in range(10)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [int(n) for n in store.lrange("numbers", 0, -1)] == list(range(1, 101))


def test_a_majority_suffices_and_a_minority_refuses(redis_server_factory: ServerFactory) -> None:
    servers = [redis_server_factory() for _ in range(5)]
    masters = [redis.Redis(host=s.host, port=s.port, socket_timeout=0.5, socket_connect_timeout=0.5) for s in servers]
    servers[0].stop()
    servers[1].stop()
    lock = Redlock("quorum", masters, ttl=30)  # longer than the wait below: only the undo removes the keys
    assert lock.acquire(timeout=2)  # 3 of 5 still up
    lock.release()
    servers[2].stop()
    started = time.monotonic()
    assert not lock.acquire(timeout=1)  # 2 of 5: never a majority
    assert time.monotonic() - started < 2
    wait_until(lambda: not any(client.exists("quorum") for client in masters[3:]), timeout=5)  # undone


def test_a_stale_holders_token_is_refused(masters: list[redis.Redis]) -> None:
    """A holder that stalls past its TTL loses the lock; the next one gets a higher token, and a resource that
    keeps the highest token it has seen refuses the stale holder's write."""
    resource: dict[str, int] = {"highest": 0}

    def write(token: int | None) -> bool:
        assert token is not None
        if token < resource["highest"]:
            return False
        resource["highest"] = token
        return True

    stalled = Redlock("fenced", masters, ttl=0.3)
    assert stalled.acquire()
    first = stalled.token
    wait_until(lambda: not stalled.locked(), timeout=5)  # it stalled: the TTL ran out
    assert not stalled.owned()
    fresh = Redlock("fenced", masters, ttl=5)
    assert fresh.acquire(timeout=2)
    assert fresh.token is not None
    assert first is not None
    assert fresh.token > first
    assert write(fresh.token)
    assert not write(first)  # the stale holder wakes up and is refused
    fresh.release()


def test_tokens_grow_even_when_majorities_differ(redis_server_factory: ServerFactory) -> None:
    """Each acquisition stores its token on the servers that granted it; any two majorities share one. The
    servers' fences differ (10, 3, 0), and the two acquisitions are granted by different majorities: a token
    taken from the second majority alone (3 or 0, plus one) would go backwards."""
    servers = [redis_server_factory() for _ in range(3)]
    no_retries = Retry(NoBackoff(), 0)  # else a try on the stopped server lands, late, once it is back
    masters = [
        redis.Redis(host=s.host, port=s.port, socket_timeout=0.5, socket_connect_timeout=0.5, retry=no_retries)
        for s in servers
    ]
    for client, fence in zip(masters, (10, 3, 0), strict=True):
        client.set("{grow}:fence", fence)
    lock = Redlock("grow", masters, ttl=5)
    servers[2].stop()  # granted by {0, 1}
    assert lock.acquire(timeout=2)
    first = lock.token
    lock.release()
    servers[2].start()
    servers[0].stop()  # granted by {1, 2}
    assert lock.acquire(timeout=2)
    second = lock.token
    lock.release()
    assert first == 11  # the highest fence of its majority, plus one
    assert second == 12  # server 1 kept 11 for it


def test_extend_and_automatic_renewal(masters: list[redis.Redis]) -> None:
    lock = Redlock("renewed", masters, ttl=0.4, auto_renew=True)
    assert lock.acquire()
    held, until = [], time.monotonic() + 1.2  # three TTLs: only renewals keep it
    while time.monotonic() < until:
        held.append(lock.locked())
    assert all(held)
    assert lock.owned()
    lock.release()
    assert not lock.locked()
    manual = Redlock("extended", masters, ttl=0.4)
    assert manual.acquire()
    assert manual.extend(5)
    assert masters[0].pttl("extended") > 1000


def test_one_server_from_a_session(redis_url: str) -> None:
    """The one-server convenience: a session (or any client) instead of a list."""
    session = FlaskRedisSingle({"URL": redis_url}).getRedis()
    with Redlock("single", session, ttl=5) as lock:
        assert lock.quorum == 1
        assert session.exists("single")
        first = lock.token
    assert not session.exists("single")
    tokens = []
    for _ in range(3):  # on one server the acquire takes the token itself: still one higher each time
        with lock:
            tokens.append(lock.token)
    assert first is not None
    assert tokens == [first + 1, first + 2, first + 3]
    assert session.get("{single}:fence") == str(first + 3).encode()


def test_ten_greenlets_in_a_gevent_process(five: list[RedisServer], masters: list[redis.Redis]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.apps.lock_gevent", *(server.url for server in five)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == list(range(1, 101))
