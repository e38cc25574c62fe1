"""Typed queues on Redis, with the methods of Python's ``queue.Queue``: ``put``, ``get(block, timeout)`` (a
blocking pop, not polling), ``get_nowait``, ``qsize``, ``empty``; ``get`` raises ``queue.Empty`` as Python's
does. FIFO (:class:`RedisQueue`), LIFO (:class:`RedisLifoQueue`) and by priority (:class:`RedisPriorityQueue`:
the lowest priority first, first in first out among equals)."""

from __future__ import annotations

import queue
import time
from typing import Any

from flask_multi_redis.cluster import companion_key
from flask_multi_redis.codec import as_bytes

from .base import Collection
from .values import T

__all__ = ["RedisLifoQueue", "RedisPriorityQueue", "RedisQueue"]

#: The longest single blocking pop, in seconds, when the client has no socket timeout to stay under.
LONGEST_POP = 30.0

# A number from the queue's counter, then the member: equal priorities pop in the order they were put.
_PUT = """
local n = redis.call('INCR', KEYS[2])
return redis.call('ZADD', KEYS[1], ARGV[1], string.format('%020d:', n) .. ARGV[2])
"""
_ORDER = 21  # the length of that number and its colon


class _Queue(Collection[T]):
    def put(self, value: T) -> None:
        """Add ``value`` to the queue (it never blocks: a Redis list has no bound)."""
        self.redis.rpush(self.key, self.values.dump(value, "put"))

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Take the next value, waiting up to ``timeout`` seconds (None: as long as it takes) when ``block``.

        :raises queue.Empty: there was none (in time).
        """
        if not block:
            return self.get_nowait()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = self._slice(deadline)
            found = self._blocking_pop(wait)
            if found is not None:
                return self.values.load(found)
            if deadline is not None and time.monotonic() >= deadline:
                raise queue.Empty(f"{self.key}: nothing within {timeout} s")

    def get_nowait(self) -> T:
        """Take the next value.

        :raises queue.Empty: the queue is empty.
        """
        found = self._pop()
        if found is None:
            raise queue.Empty(f"{self.key}: empty")
        return self.values.load(found)

    def qsize(self) -> int:
        return int(self.redis.llen(self.key))

    def empty(self) -> bool:
        return self.qsize() == 0

    def __len__(self) -> int:
        return self.qsize()

    def _slice(self, deadline: float | None) -> float:
        """One blocking pop's wait: what is left, and below the client's socket timeout (or a read would end
        first and lose the popped value)."""
        pool = getattr(self.redis, "connection_pool", None) or getattr(self.redis, "nodes_manager", None)
        kwargs: dict[str, Any] = getattr(pool, "connection_kwargs", {})  # a cluster's: its nodes' settings
        socket_timeout = kwargs.get("socket_timeout")
        longest = LONGEST_POP if not socket_timeout else max(0.01, socket_timeout * 0.8)
        left = longest if deadline is None else max(0.01, deadline - time.monotonic())
        return round(min(longest, left), 3)

    def _blocking_pop(self, wait: float) -> bytes | None:
        found = self.redis.blpop([self.key], timeout=wait)
        return None if found is None else found[1]

    def _pop(self) -> bytes | None:
        return self.redis.lpop(self.key)  # type: ignore[no-any-return]


class RedisQueue(_Queue[T]):
    """First in, first out: ``RedisQueue(redis, rkey, value_type)``."""


class RedisLifoQueue(_Queue[T]):
    """Last in, first out: ``RedisLifoQueue(redis, rkey, value_type)``."""

    def _blocking_pop(self, wait: float) -> bytes | None:
        found = self.redis.brpop([self.key], timeout=wait)
        return None if found is None else found[1]

    def _pop(self) -> bytes | None:
        return self.redis.rpop(self.key)  # type: ignore[no-any-return]


class RedisPriorityQueue(_Queue[T]):
    """The lowest priority first, in the order they were put among equal priorities (a sorted set, and a counter
    next to the key, in its cluster slot: ``{<key>}:order``): ``RedisPriorityQueue(redis, rkey, value_type)``,
    ``put(value, priority)``."""

    def put(self, value: T, priority: float = 0) -> None:
        """Add ``value`` with ``priority`` (lower pops first), in one atomic step."""
        data = self.values.dump(value, "put")
        self.redis.eval(_PUT, 2, self.key, companion_key(self.key, "order"), priority, data)

    def qsize(self) -> int:
        return int(self.redis.zcard(self.key))

    def clear(self) -> None:
        self.redis.delete(self.key, companion_key(self.key, "order"))  # one slot: one DEL, on a cluster too

    def expire(self, seconds: float) -> bool:
        self.redis.pexpire(companion_key(self.key, "order"), int(seconds * 1000))
        return super().expire(seconds)

    def _blocking_pop(self, wait: float) -> bytes | None:
        found = self.redis.bzpopmin([self.key], timeout=wait)
        return None if found is None else as_bytes(found[1])[_ORDER:]

    def _pop(self) -> bytes | None:
        found = self.redis.zpopmin(self.key)
        return as_bytes(found[0][0])[_ORDER:] if found else None
