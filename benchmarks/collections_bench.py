"""Typed collections and the Redlock against pottery (sync), on the benchmark's own redis-server: operations
per second for list append / getitem / contains, hash set / get / update of 100 keys, set add / contains,
queue put + get, and lock acquire + release, each system in turn in alternating rounds.

pottery is an optional peer (extra ``bench``); without it only ours is measured. purse (asyncio) is compared
once our asyncio collections exist.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable

import redis

from flask_multi_redis.collections import RedisHash, RedisList, RedisQueue, RedisSet
from flask_multi_redis.lock import Redlock

from .common import Result

SYSTEM = "flask-multi-redis"
POTTERY = "pottery"

Op = Callable[[int], object]


def _ours(client: redis.Redis) -> dict[str, tuple[Callable[[], None], Op]]:
    lst, hsh = RedisList(client, "b:list", str), RedisHash(client, "b:hash", str)
    st, q = RedisSet(client, "b:set", str), RedisQueue(client, "b:queue", str)
    lock = Redlock("b:lock", client, ttl=10)
    batch = {f"k{n}": "v" for n in range(100)}

    def fill() -> None:
        client.delete("b:list", "b:hash", "b:set", "b:queue", "b:lock")
        lst.extend(["x"] * 100)
        hsh.update(batch)
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
        "hash update of 100 keys": lambda n: hsh.update(batch),
        "set add": lambda n: st.add("x"),
        "set contains": lambda n: st.contains("x"),
        "queue put + get": lambda n: (q.put("x"), q.get_nowait()),
        "lock acquire + release": lock_cycle,
    }
    return {name: (fill, op) for name, op in ops.items()}


def _pottery(client: redis.Redis) -> dict[str, tuple[Callable[[], None], Op]] | None:
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
    batch = {f"k{n}": "v" for n in range(100)}

    def fill() -> None:
        client.delete("p:list", "p:hash", "p:set", "p:queue", "redlock:p:lock")
        lst.extend(["x"] * 100)
        hsh.update(batch)
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
        "hash update of 100 keys": lambda n: hsh.update(batch),
        "set add": lambda n: st.add("x"),
        "set contains": lambda n: "x" in st,
        "queue put + get": lambda n: (q.put("x"), q.get_nowait()),
        "lock acquire + release": lock_cycle,
    }
    return {name: (fill, op) for name, op in ops.items()}


def _rate(fill: Callable[[], None], op: Op, seconds: float) -> float:
    fill()
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        for n in range(count, count + 50):
            op(n)
        count += 50
    return count / elapsed


def run(url: str, quick: bool) -> list[Result]:
    """Operations per second of each operation, for ours and pottery, in alternating rounds (the median)."""
    client = redis.Redis.from_url(url)
    systems = {SYSTEM: _ours(client)}
    peer = _pottery(client)
    if peer is not None:
        systems[POTTERY] = peer
    rounds, seconds = (1, 0.1) if quick else (3, 0.5)
    rates: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for name in systems[SYSTEM]:
            for system, ops in systems.items():
                fill, op = ops[name]
                rates.setdefault((system, name), []).append(_rate(fill, op, seconds))
    client.close()
    return [
        Result(system=system, scenario=f"collection: {name}", n=len(found), rps=round(statistics.median(found), 1))
        for (system, name), found in rates.items()
    ]


def table(results: list[Result]) -> str:
    """Ours and pottery, operation by operation, with the ratio (above 1x: ours is faster)."""
    mine = {r.scenario: r for r in results if r.system == SYSTEM and r.scenario.startswith("collection: ")}
    theirs = {r.scenario: r for r in results if r.system == POTTERY}
    if not mine:
        return ""
    rows = ["| operation | flask-multi-redis ops/s | pottery ops/s | ours / pottery |", "| --- | ---: | ---: | ---: |"]
    for scenario, result in mine.items():
        other = theirs.get(scenario)
        ratio = f"{result.rps / other.rps:.2f}x" if other and other.rps and result.rps else "-"
        peer = f"{other.rps:.0f}" if other and other.rps else "-"
        rows.append(f"| {scenario.removeprefix('collection: ')} | {result.rps:.0f} | {peer} | {ratio} |")
    return "\n".join(rows)
