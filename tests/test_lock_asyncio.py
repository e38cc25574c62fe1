"""The asyncio Redlock against the same real servers: purse's lock example (10 tasks x 10 increments), the
quorum, release by the owner only and fencing tokens, on redis.asyncio."""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Awaitable, Callable

import pytest
import redis.asyncio

from flask_multi_redis.lock import LockError, LockTimeout
from flask_multi_redis.lock.asyncio import Redlock

from .conftest import ServerFactory
from .servers import RedisServer
from .waiting import settled


@pytest.fixture(scope="module")
def five(redis_server_factory: ServerFactory) -> list[RedisServer]:
    return [redis_server_factory() for _ in range(5)]


def run(five: list[RedisServer], test: Callable[[list[redis.asyncio.Redis]], Awaitable[None]]) -> None:
    """Run ``test`` with asyncio clients of the five servers, emptied first."""

    async def main() -> None:
        masters = [redis.asyncio.Redis(host=s.host, port=s.port, socket_timeout=1) for s in five]
        try:
            for client in masters:
                await client.flushall()
            await test(masters)
        finally:
            await settled()
            for client in masters:
                await client.aclose()

    asyncio.run(main())


def test_purses_example_ten_tasks_ten_increments_in_order(five: list[RedisServer]) -> None:
    async def test(masters: list[redis.asyncio.Redis]) -> None:
        store = masters[0]

        async def do_job(n: int) -> None:
            lock = Redlock("redlock:list_lock", masters, timeout=30)
            for _ in range(n):
                async with lock:
                    last = await store.lindex("redis_list", -1)
                    current = int(last) if last is not None else 0
                    await asyncio.sleep(0.005 * random.random())
                    await store.rpush("redis_list", current + 1)

        await asyncio.gather(*(do_job(10) for _ in range(10)))
        assert [int(n) for n in await store.lrange("redis_list", 0, -1)] == list(range(1, 101))

    run(five, test)


def test_owner_only_locked_and_tokens(five: list[RedisServer]) -> None:
    async def test(masters: list[redis.asyncio.Redis]) -> None:
        first, second = Redlock("job", masters, ttl=5), Redlock("job", masters, ttl=5)
        assert await first.acquire(blocking=False)
        assert await second.locked()
        assert not await second.acquire(blocking=False)
        with pytest.raises(LockError):
            await second.release()
        token = first.token
        await first.release()
        assert await second.acquire(timeout=1)
        assert second.token is not None
        assert token is not None
        assert second.token > token
        assert await second.extend(5)
        await second.release()
        with pytest.raises(LockTimeout):
            async with Redlock("job", masters, ttl=5), Redlock("job", masters, ttl=5, timeout=0.2):
                pass  # pragma: no cover - not reached

    run(five, test)


def test_a_majority_suffices_and_a_minority_refuses(redis_server_factory: ServerFactory) -> None:
    servers = [redis_server_factory() for _ in range(5)]

    async def test(masters: list[redis.asyncio.Redis]) -> None:
        servers[0].stop()
        servers[1].stop()
        lock = Redlock("quorum", masters, ttl=5)
        assert await lock.acquire(timeout=2)
        await lock.release()
        servers[2].stop()
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert not await lock.acquire(timeout=1)
        assert loop.time() - started < 2

    async def main() -> None:
        masters = [redis.asyncio.Redis(host=s.host, port=s.port, socket_timeout=0.5) for s in servers]
        try:
            await test(masters)
        finally:
            await settled()
            for client in masters:
                await client.aclose()

    asyncio.run(main())


def test_one_silent_server_refuses_by_the_deadline(redis_server_factory: ServerFactory) -> None:
    """One server gone silent (SIGSTOP, its socket open): the one-server path awaits its reply with the
    deadline (no socket timeout here), then refuses."""
    server = redis_server_factory()
    process = server.process
    assert process is not None

    async def main() -> None:
        client = redis.asyncio.Redis(host=server.host, port=server.port)
        lock = Redlock("silent", client, ttl=10)
        try:
            assert await lock.acquire()
            await lock.release()
            process.send_signal(signal.SIGSTOP)
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert not await lock.acquire(timeout=0.5)
            assert loop.time() - started < 2
        finally:
            process.send_signal(signal.SIGCONT)
            await settled()
            await client.aclose()

    asyncio.run(main())
