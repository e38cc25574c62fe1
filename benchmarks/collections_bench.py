"""Typed collections and the Redlock against pottery (sync) and purse (asyncio), on the benchmark's own
redis-server: operations per second for list append / getitem / contains, hash set / get / update of 100 keys,
set add / contains, queue put + get, and lock acquire + release; ours and each peer's calls interleaved.

pottery and purse are optional peers (extra ``bench``; purse with ``--no-deps``, as it pins redis below 6 and
runs on today's); without them only ours is measured.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio

from flask_multi_redis import collections as sync
from flask_multi_redis.collections import asyncio as aio
from flask_multi_redis.lock import Redlock
from flask_multi_redis.lock import asyncio as async_lock

from .common import Result

SYSTEM = "flask-multi-redis"
POTTERY = "pottery"
ASYNC_SYSTEM = "flask-multi-redis asyncio"
PURSE = "purse"

Op = Callable[[int], Any]  # an operation's n-th run: a result, or an awaitable of it
Ops = dict[str, tuple[Callable[[], Any], Op]]  # operation name: (what fills the collections first, the operation)
BATCH = {f"k{n}": "v" for n in range(100)}


def _ours(client: redis.Redis) -> Ops:
    lst, hsh = sync.RedisList(client, "b:list", str), sync.RedisHash(client, "b:hash", str)
    st, q = sync.RedisSet(client, "b:set", str), sync.RedisQueue(client, "b:queue", str)
    lock = Redlock("b:lock", client, ttl=10)

    def fill() -> None:
        client.delete("b:list", "b:hash", "b:set", "b:queue", "b:lock")
        lst.extend(["x"] * 100)
        hsh.update(BATCH)
        st.add("x")

    def lock_cycle(_: int) -> None:
        lock.acquire()
        lock.release()

    ops: dict[str, Op] = {
        "list append": lambda n: lst.append("x"),
        "list getitem": lambda n: lst.getitem(n % 100),
        "list contains": lambda n: lst.contains("absent"),
        "hash set": lambda n: hsh.set(f"k{n % 100}", "v"),
        "hash get": lambda n: hsh.get(f"k{n % 100}"),
        "hash update of 100 keys": lambda n: hsh.update(BATCH),
        "set add": lambda n: st.add("x"),
        "set contains": lambda n: st.contains("x"),
        "queue put + get": lambda n: (q.put("x"), q.get_nowait()),
        "lock acquire + release": lock_cycle,
    }
    return {name: (fill, op) for name, op in ops.items()}


def _pottery(client: redis.Redis) -> Ops | None:
    try:
        import pottery
    except ImportError:
        return None
    warnings.filterwarnings("ignore", module="pottery")  # its O(n) warnings, on every contains
    lst = pottery.RedisList(redis=client, key="p:list")
    hsh = pottery.RedisDict(redis=client, key="p:hash")
    st = pottery.RedisSet(redis=client, key="p:set")
    q = pottery.RedisSimpleQueue(redis=client, key="p:queue")
    lock = pottery.Redlock(key="p:lock", masters={client}, auto_release_time=10)

    def fill() -> None:
        client.delete("p:list", "p:hash", "p:set", "p:queue", "redlock:p:lock")
        lst.extend(["x"] * 100)
        hsh.update(BATCH)
        st.add("x")

    def lock_cycle(_: int) -> None:
        lock.acquire()
        lock.release()

    ops: dict[str, Op] = {
        "list append": lambda n: lst.append("x"),
        "list getitem": lambda n: lst[n % 100],
        "list contains": lambda n: "absent" in lst,
        "hash set": lambda n: hsh.__setitem__(f"k{n % 100}", "v"),
        "hash get": lambda n: hsh.get(f"k{n % 100}"),
        "hash update of 100 keys": lambda n: hsh.update(BATCH),
        "set add": lambda n: st.add("x"),
        "set contains": lambda n: "x" in st,
        "queue put + get": lambda n: (q.put("x"), q.get_nowait()),
        "lock acquire + release": lock_cycle,
    }
    return {name: (fill, op) for name, op in ops.items()}


def _async_ops(client: redis.asyncio.Redis, prefix: str, kinds: Any, lock: Any) -> Ops:
    """Ours on redis.asyncio, or purse (``kinds``: a module with both's class names): the same operations."""
    lst, hsh = kinds.RedisList(client, f"{prefix}:list", str), kinds.RedisHash(client, f"{prefix}:hash", str)
    st, q = kinds.RedisSet(client, f"{prefix}:set", str), kinds.RedisQueue(client, f"{prefix}:queue", str)

    async def fill() -> None:
        await client.delete(*(f"{prefix}:{name}" for name in ("list", "hash", "set", "queue", "lock")))
        await lst.extend(["x"] * 100)
        await hsh.update(BATCH)
        await st.add("x")

    async def queue_cycle(_: int) -> None:
        await q.put("x")
        await q.get_nowait()

    async def lock_cycle(_: int) -> None:
        await lock.acquire()
        await lock.release()

    ops: dict[str, Op] = {
        "list append": lambda n: lst.append("x"),
        "list getitem": lambda n: lst.getitem(n % 100),
        "list contains": lambda n: lst.contains("absent"),
        "hash set": lambda n: hsh.set(f"k{n % 100}", "v"),
        "hash get": lambda n: hsh.get(f"k{n % 100}"),
        "hash update of 100 keys": lambda n: hsh.update(BATCH),
        "set add": lambda n: st.add("x"),
        "set contains": lambda n: st.contains("x"),
        "queue put + get": queue_cycle,
        "lock acquire + release": lock_cycle,
    }
    return {name: (fill, op) for name, op in ops.items()}


def _purse(client: redis.asyncio.Redis) -> Ops | None:
    try:
        import purse
    except ImportError:
        return None
    return _async_ops(client, "q", purse, purse.Redlock("q:lock", [client], auto_release_time=10_000))


def _pair_rates(
    ours: tuple[Callable[[], Any], Op], peer: tuple[Callable[[], Any], Op] | None, seconds: float
) -> list[float]:
    """Operations per second of ours and the peer, their calls interleaved one by one (A B A B), so that the
    machine's drift weighs on both alike."""
    (fill, op), spent = ours, [0.0, 0.0]
    fill()
    if peer is not None:
        peer[0]()
    runs = [op] if peer is None else [op, peer[1]]
    count, clock, started = 0, time.perf_counter, time.perf_counter()
    while clock() - started < seconds * len(runs):
        for n in range(count, count + 50):
            for index, run in enumerate(runs):
                began = clock()
                run(n)
                spent[index] += clock() - began
        count += 50
    return [count / total for total in spent[: len(runs)]]


async def _async_pair_rates(
    ours: tuple[Callable[[], Any], Op], peer: tuple[Callable[[], Any], Op] | None, seconds: float
) -> list[float]:
    """As :func:`_pair_rates`, on the event loop."""
    (fill, op), spent = ours, [0.0, 0.0]
    await fill()
    if peer is not None:
        await peer[0]()
    runs = [op] if peer is None else [op, peer[1]]
    count, clock, started = 0, time.perf_counter, time.perf_counter()
    while clock() - started < seconds * len(runs):
        for n in range(count, count + 50):
            for index, run in enumerate(runs):
                began = clock()
                await run(n)
                spent[index] += clock() - began
        count += 50
    return [count / total for total in spent[: len(runs)]]


def run(url: str, quick: bool) -> list[Result]:
    """Operations per second of each operation, ours against pottery (sync) and against purse (asyncio), each
    pair's calls interleaved, in rounds (the median)."""
    client = redis.Redis.from_url(url)
    loop = asyncio.new_event_loop()
    async_client = redis.asyncio.Redis.from_url(url)
    mine = _ours(client)
    mine_async = _async_ops(async_client, "a", aio, async_lock.Redlock("a:lock", async_client, ttl=10))
    pottery, purse = _pottery(client), _purse(async_client)
    rounds, seconds = (1, 0.1) if quick else (3, 0.5)
    rates: dict[tuple[str, str], list[float]] = {}

    def keep(name: str, systems: tuple[str, str], found: list[float]) -> None:
        for system, rate in zip(systems, found, strict=False):
            rates.setdefault((system, name), []).append(rate)

    try:
        for _ in range(rounds):
            for name in mine:
                peer = pottery[name] if pottery else None
                keep(name, (SYSTEM, POTTERY), _pair_rates(mine[name], peer, seconds))
                peer = purse[name] if purse else None
                found = loop.run_until_complete(_async_pair_rates(mine_async[name], peer, seconds))
                keep(name, (ASYNC_SYSTEM, PURSE), found)
    finally:
        client.close()
        loop.run_until_complete(async_client.aclose())
        loop.close()
    return [
        Result(system=system, scenario=f"collection: {name}", n=len(found), rps=round(statistics.median(found), 1))
        for (system, name), found in rates.items()
    ]


def table(results: list[Result]) -> str:
    """Ours against pottery (sync) and against purse (asyncio), operation by operation, with the ratios (above
    1x: ours is faster)."""
    rps = {(r.system, r.scenario): r.rps for r in results if r.scenario.startswith("collection: ")}
    scenarios = [scenario for system, scenario in rps if system == SYSTEM]
    if not scenarios:
        return ""
    rows = [
        "| operation | ours ops/s | pottery ops/s | ours / pottery | ours asyncio ops/s | purse ops/s | ours / purse |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for scenario in scenarios:
        cells = [scenario.removeprefix("collection: ")]
        for mine, theirs in ((SYSTEM, POTTERY), (ASYNC_SYSTEM, PURSE)):
            ours, peer = rps.get((mine, scenario)), rps.get((theirs, scenario))
            cells += [f"{ours:.0f}" if ours else "-", f"{peer:.0f}" if peer else "-"]
            cells.append(f"{ours / peer:.2f}x" if ours and peer else "-")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)
