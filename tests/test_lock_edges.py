"""The Redlock (sync and asyncio) at its edges: an extension that fails or asks for no time, settings that could
never hold a lock, a timeout of 0, clients of the wrong kind, a release to a slow server, and a fork."""

from __future__ import annotations

import asyncio
import math
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Awaitable, Callable, Iterator

import pytest
import redis
import redis.asyncio
from redis.backoff import NoBackoff
from redis.retry import Retry

from flask_multi_redis.lock import Redlock
from flask_multi_redis.lock.algorithm import SHORTEST_TTL
from flask_multi_redis.lock.asyncio import Redlock as AsyncRedlock

from .conftest import ROOT, ServerFactory
from .servers import RedisServer
from .waiting import settled


@pytest.fixture(scope="module")
def three(redis_server_factory: ServerFactory) -> list[RedisServer]:
    """Three independent servers of this module's own (the tests pause them with CLIENT PAUSE)."""
    return [redis_server_factory() for _ in range(3)]


@pytest.fixture
def admins(three: list[RedisServer]) -> Iterator[list[redis.Redis]]:
    clients = [server.admin() for server in three]
    for client in clients:
        client.client_unpause()
        client.flushall()
    yield clients
    for client in clients:
        client.client_unpause()
        client.close()


@pytest.fixture
def masters(three: list[RedisServer], admins: list[redis.Redis]) -> Iterator[list[redis.Redis]]:
    clients = [redis.Redis(host=s.host, port=s.port, socket_timeout=5, retry=Retry(NoBackoff(), 0)) for s in three]
    yield clients
    for client in clients:
        client.close()


def run_async(three: list[RedisServer], test: Callable[[list[redis.asyncio.Redis]], Awaitable[None]]) -> None:
    async def main() -> None:
        clients = [redis.asyncio.Redis(host=s.host, port=s.port, socket_timeout=5) for s in three]
        try:
            await test(clients)
        finally:
            await settled()
            for client in clients:
                await client.aclose()

    asyncio.run(main())


def test_extend_that_returns_false_must_not_leave_owned_true_after_shortening_the_keys(
    masters: list[redis.Redis], admins: list[redis.Redis]
) -> None:
    """extend(0.5) on a 30 s lock while the servers are slow (writes paused 0.8 s): the PEXPIRE lands on every
    server and its reply comes too late for any validity. extend says False, and owned() no longer counts on
    the old 30 s: the keys expire 0.5 s after landing, and a second holder may take the lock then."""
    first = Redlock("shortened", masters, ttl=30)
    assert first.acquire(timeout=2)
    for admin in admins:
        admin.client_pause(800, all=False)
    assert not first.extend(0.5)  # too late to be known valid
    assert not first.owned()
    second = Redlock("shortened", masters, ttl=30)
    assert second.acquire(timeout=5)  # the keys expired: it gets the lock
    assert not (first.owned() and second.owned()), "two instances own the lock at once"


def test_extend_with_a_zero_ttl_is_refused_instead_of_deleting_the_lock(masters: list[redis.Redis]) -> None:
    """extend(0) (or a negative ttl, or one under 10 ms) would send PEXPIRE 0 and delete the key everywhere: it is
    refused, as the constructor refuses such a ttl, and the lock is left as it was."""
    first = Redlock("zero", masters, ttl=30)
    assert first.acquire(timeout=2)
    for ttl in (0, -1, 0.001, math.nan, math.inf):
        with pytest.raises(ValueError, match=r"ttl must be a finite number of at least 0\.01 seconds"):
            first.extend(ttl)
    assert first.owned()
    assert not Redlock("zero", masters, ttl=30).acquire(blocking=False)


def test_async_extend_with_a_zero_ttl_is_refused(three: list[RedisServer], admins: list[redis.Redis]) -> None:
    async def test(clients: list[redis.asyncio.Redis]) -> None:
        lock = AsyncRedlock("zero-async", clients, ttl=30)
        assert await lock.acquire(timeout=2)
        with pytest.raises(ValueError, match="ttl must be a finite number"):
            await lock.extend(0)
        assert lock.owned()
        assert sum(bool(admin.exists("zero-async")) for admin in admins) >= 2, "the lock was deleted by extend(0)"

    run_async(three, test)


def test_retry_delay_zero_still_retries_until_the_timeout(masters: list[redis.Redis]) -> None:
    """retry_delay=0 (retry at once) with a timeout tries until the timeout: a pause of 0 is not "no time left".
    The holder lets go 0.2 s later, well within the 3 s timeout."""
    holder = Redlock("spin", masters, ttl=10)
    assert holder.acquire(timeout=2)
    releaser = threading.Timer(0.2, holder.release)
    releaser.start()
    try:
        waiter = Redlock("spin", masters, ttl=10, retry_delay=0)
        assert waiter.acquire(timeout=3), "gave up after one try, long before its timeout"
        waiter.release()
    finally:
        releaser.join(5)


@pytest.mark.parametrize("ttl", [0.002, -1, math.nan, math.inf])
def test_a_ttl_no_lock_could_be_held_for_is_refused(masters: list[redis.Redis], ttl: float) -> None:
    """Under about 2 ms the drift allowance alone (1% + 2 ms) leaves no validity: acquire() could never succeed,
    and ``with lock:`` without a timeout would spin for ever."""
    with pytest.raises(ValueError, match=r"ttl must be a finite number of at least 0\.01 seconds"):
        Redlock("tiny", masters, ttl=ttl)


def test_the_shortest_ttl_can_be_acquired(masters: list[redis.Redis]) -> None:
    lock = Redlock("shortest", masters, ttl=SHORTEST_TTL)
    assert lock.acquire(timeout=1)


@pytest.mark.parametrize("delay", [-0.1, math.nan, math.inf])
def test_a_retry_delay_that_is_not_a_pause_is_refused(masters: list[redis.Redis], delay: float) -> None:
    with pytest.raises(ValueError, match="retry_delay must be"):
        Redlock("delay", masters, retry_delay=delay)


def test_acquire_with_timeout_zero_makes_one_real_try(masters: list[redis.Redis]) -> None:
    """acquire(timeout=0) is one try, as without blocking: on a free lock it succeeds, on one server and three (a
    try begun at its deadline would wait 0 s for its replies, and always fail)."""
    one = Redlock("zero-timeout-one", masters[0], ttl=10)
    assert one.acquire(timeout=0)  # one server, sync: a real try
    one.release()
    lock = Redlock("zero-timeout", masters, ttl=10)
    assert lock.acquire(timeout=0), "a free lock on three servers is never acquired with timeout=0"
    lock.release()


def test_async_one_server_acquire_with_timeout_zero_as_the_sync_one(three: list[RedisServer]) -> None:
    """The asyncio Redlock on one server takes a free lock with timeout=0, as the sync one does."""

    async def test(clients: list[redis.asyncio.Redis]) -> None:
        lock = AsyncRedlock("zero-timeout-async", clients[0], ttl=10)
        assert await lock.acquire(timeout=0), "asyncio one-server acquire(timeout=0) fails where the sync one holds"
        await lock.release()

    run_async(three, test)


def test_a_redlock_given_clients_of_the_other_kind_says_which_to_use(three: list[RedisServer]) -> None:
    """redis.asyncio clients given to the sync Redlock would return coroutines never awaited, each counted as a
    no: acquire() would fail at its timeout (or with none spin for ever) without an error."""
    async_clients = [redis.asyncio.Redis(host=s.host, port=s.port) for s in three]
    with pytest.raises(TypeError, match=r"use flask_multi_redis\.lock\.asyncio\.Redlock"):
        Redlock("mixed", async_clients, ttl=5)  # type: ignore[arg-type]
    sync_client = redis.Redis(host=three[0].host, port=three[0].port)
    with pytest.raises(TypeError, match=r"use flask_multi_redis\.lock\.Redlock"):
        AsyncRedlock("mixed", [sync_client], ttl=5)  # type: ignore[list-item]


def test_async_release_reaches_a_slow_server(redis_server_factory: ServerFactory) -> None:
    """An asyncio release() returns once a majority deleted the key; its call to the third server, slow to answer
    (its connection was dropped, and it is stopped for a moment: SIGSTOP, then SIGCONT), goes on and lands when
    the server answers, as the sync Redlock's does. Were it cancelled, that server would keep the released key
    for the whole TTL, and with one of the other two down nobody could take the released lock for 30 s."""
    servers = [redis_server_factory() for _ in range(3)]
    admins = [server.admin() for server in servers]
    slow = servers[2].process
    assert slow is not None

    async def test(clients: list[redis.asyncio.Redis]) -> None:
        lock = AsyncRedlock("released", clients, ttl=30)
        assert await lock.acquire(timeout=2)
        value = next(v for v in (admin.get("released") for admin in admins) if v is not None)
        for admin in admins:  # the holding on all three (the round may have cancelled its third SET: as if it landed)
            admin.set("released", value, px=30000, nx=True)
        await clients[2].connection_pool.disconnect()  # the third server's connection dropped
        slow.send_signal(signal.SIGSTOP)
        try:
            await lock.release()  # servers 0 and 1 answer: the outcome is known
        finally:
            slow.send_signal(signal.SIGCONT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 3  # the loop runs on: a call still in flight lands once the server answers
        while admins[2].exists("released") and loop.time() < deadline:
            await asyncio.sleep(0.01)

    try:
        run_async(servers, test)
        if admins[2].exists("released"):
            servers[0].stop()  # the consequence: a server down, and the released lock cannot be taken
            sync = [
                redis.Redis(host=s.host, port=s.port, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)) for s in servers
            ]
            taken = Redlock("released", sync, ttl=5).acquire(timeout=1)
            raise AssertionError(
                f"released, yet the slow server kept the key (PTTL {admins[2].pttl('released')} ms); "
                f"with one server down a new holder acquired: {taken}"
            )
    finally:
        for admin in admins:
            admin.close()


FORKED = textwrap.dedent(
    """
    import os, sys, time
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
    from flask_multi_redis.lock import Redlock, redlock

    def clients():
        return [redis.Redis(host="127.0.0.1", port=int(p), socket_timeout=1, retry=Retry(NoBackoff(), 0))
                for p in sys.argv[1:]]

    before = Redlock("before-fork", clients(), ttl=5)  # used once in the parent (a preloaded app, say)
    assert before.acquire(timeout=2)
    before.release()
    # let the parent's pool settle to idle (its three workers back waiting), as any process does in a moment
    from flask_multi_redis.lock import redlock
    settle = time.monotonic() + 5
    while redlock._pool.get()._idle_semaphore._value < 3 and time.monotonic() < settle:
        time.sleep(0.01)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        ok = Redlock("after-fork", clients(), ttl=5).acquire(timeout=2)
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    print(os.read(read, 1).decode())
    """
)


def test_a_forked_child_can_take_a_lock_after_the_parent_used_one(
    three: list[RedisServer], admins: list[redis.Redis]
) -> None:
    """The sync Redlock's calls run on a thread pool: a forked child (gunicorn --preload, multiprocessing with fork)
    gets a pool of its own. The parent's, with its idle workers counted but none of its threads in the child,
    would never run a call, and acquire() in the child would never succeed."""
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", FORKED, *(str(s.port) for s in three)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "1", "the forked child could not acquire a free lock"
