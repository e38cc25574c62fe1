"""Typed queues on Redis, with the methods of Python's ``queue.Queue``: ``put``, ``get(block, timeout)`` (a
blocking pop, not polling), ``get_nowait``, ``qsize``, ``empty``; ``get`` raises ``queue.Empty`` as Python's
does. FIFO (:class:`RedisQueue`), LIFO (:class:`RedisLifoQueue`) and by priority (:class:`RedisPriorityQueue`:
the lowest priority first, first in first out among equals)."""

from __future__ import annotations

import queue
import time
from abc import ABC, abstractmethod
from typing import Any

from flask_multi_redis.cluster import companion_key
from flask_multi_redis.codec import as_bytes

from .base import Collection
from .operation import Op, Sync, operation
from .values import T

__all__ = [
    "LifoQueueOperations",
    "PriorityQueueOperations",
    "QueueOperations",
    "RedisLifoQueue",
    "RedisPriorityQueue",
    "RedisQueue",
]

#: The longest single blocking pop, in seconds, when the client has no socket timeout to stay under.
LONGEST_POP = 30.0

# A number from the queue's counter, then the member: equal priorities pop in the order they were put.
_PUT = """
local n = redis.call('INCR', KEYS[2])
return redis.call('ZADD', KEYS[1], ARGV[1], string.format('%020d:', n) .. ARGV[2])
"""
_ORDER = 21  # the length of that number and its colon


class _Queue(Collection[T], ABC):
    """What every queue does; each kind says how it pops."""

    @operation
    def get(self, block: bool = True, timeout: float | None = None) -> Op[T]:
        """Take the next value, waiting up to ``timeout`` seconds (None: as long as it takes) when ``block``.

        :raises queue.Empty: there was none (in time).
        """
        if not block:
            return (yield from self._get_nowait())
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = yield from self._blocking_pop(self._slice(deadline))
            if found is not None:
                return (yield from self._taken(found))
            if deadline is not None and time.monotonic() >= deadline:
                raise queue.Empty(f"{self.key}: nothing within {timeout} s")

    @operation
    def get_nowait(self) -> Op[T]:
        """Take the next value.

        :raises queue.Empty: the queue is empty.
        """
        return (yield from self._get_nowait())

    @operation
    def qsize(self) -> Op[int]:
        """How many values wait in the queue."""
        return int((yield self._size()))

    @operation
    def empty(self) -> Op[bool]:
        """Whether the queue is empty."""
        return int((yield self._size())) == 0

    def _get_nowait(self) -> Op[T]:
        found = yield from self._pop()
        if found is None:
            raise queue.Empty(f"{self.key}: empty")
        return (yield from self._taken(found))

    def _slice(self, deadline: float | None) -> float:
        """One blocking pop's wait: what is left, and below the client's socket timeout (or a read would end
        first and lose the popped value)."""
        pool = getattr(self.redis, "connection_pool", None) or getattr(self.redis, "nodes_manager", None)
        kwargs: dict[str, Any] = getattr(pool, "connection_kwargs", {})  # a cluster's: its nodes' settings
        socket_timeout = kwargs.get("socket_timeout")
        longest = LONGEST_POP if not socket_timeout else max(0.01, socket_timeout * 0.8)
        left = longest if deadline is None else max(0.01, deadline - time.monotonic())
        return round(min(longest, left), 3)

    def _size(self) -> Any:
        return self.redis.llen(self.key)

    @abstractmethod
    def _blocking_pop(self, wait: float) -> Op[bytes | None]:
        """The steps of one blocking pop of at most ``wait`` seconds: the value, or None."""

    @abstractmethod
    def _pop(self) -> Op[bytes | None]:
        """The steps of one pop that does not wait: the value, or None."""


class QueueOperations(_Queue[T]):
    """The operations of a first in, first out queue, for :class:`RedisQueue` and its asyncio twin."""

    @operation
    def put(self, value: T) -> Op[None]:
        """Add ``value`` to the queue (it never blocks: a Redis list has no bound)."""
        yield self.redis.rpush(self.key, self.values.dump(value, "put"))

    def _blocking_pop(self, wait: float) -> Op[bytes | None]:
        found = yield self.redis.blpop([self.key], timeout=wait)
        return None if found is None else found[1]

    def _pop(self) -> Op[bytes | None]:
        return (yield self.redis.lpop(self.key))  # type: ignore[no-any-return]


class LifoQueueOperations(QueueOperations[T]):
    """The operations of a last in, first out queue, for :class:`RedisLifoQueue` and its asyncio twin."""

    def _blocking_pop(self, wait: float) -> Op[bytes | None]:
        found = yield self.redis.brpop([self.key], timeout=wait)
        return None if found is None else found[1]

    def _pop(self) -> Op[bytes | None]:
        return (yield self.redis.rpop(self.key))  # type: ignore[no-any-return]


class PriorityQueueOperations(_Queue[T]):
    """The operations of a priority queue, for :class:`RedisPriorityQueue` and its asyncio twin: a sorted set,
    and a counter next to the key, in its cluster slot (``{<key>}:order``)."""

    @operation
    def put(self, value: T, priority: float = 0) -> Op[None]:
        """Add ``value`` with ``priority`` (lower pops first), in one atomic step."""
        data = self.values.dump(value, "put")
        yield self.redis.eval(_PUT, 2, self.key, companion_key(self.key, "order"), priority, data)

    @operation
    def clear(self) -> Op[None]:
        """Delete the queue and its counter."""
        yield self.redis.delete(self.key, companion_key(self.key, "order"))  # one slot: one DEL, on a cluster too

    @operation
    def expire(self, seconds: float) -> Op[bool]:
        """Delete the queue and its counter after ``seconds``; False when the queue does not exist."""
        yield self.redis.pexpire(companion_key(self.key, "order"), int(seconds * 1000))
        return bool((yield self.redis.pexpire(self.key, int(seconds * 1000))))

    @operation
    def persist(self) -> Op[bool]:
        """Keep the queue and its counter for good; False when the queue had no TTL, or does not exist."""
        yield self.redis.persist(companion_key(self.key, "order"))
        return bool((yield self.redis.persist(self.key)))

    def _size(self) -> Any:
        return self.redis.zcard(self.key)

    def _blocking_pop(self, wait: float) -> Op[bytes | None]:
        found = yield self.redis.bzpopmin([self.key], timeout=wait)
        return None if found is None else as_bytes(found[1])[_ORDER:]

    def _pop(self) -> Op[bytes | None]:
        found = yield self.redis.zpopmin(self.key)
        return as_bytes(found[0][0])[_ORDER:] if found else None


class RedisQueue(QueueOperations[T], Sync):
    """First in, first out: ``RedisQueue(redis, rkey, value_type)``; ``len(q)`` is ``q.qsize()``."""

    def __len__(self) -> int:
        return self.qsize()


class RedisLifoQueue(LifoQueueOperations[T], Sync):
    """Last in, first out: ``RedisLifoQueue(redis, rkey, value_type)``; ``len(q)`` is ``q.qsize()``."""

    def __len__(self) -> int:
        return self.qsize()


class RedisPriorityQueue(PriorityQueueOperations[T], Sync):
    """The lowest priority first, in the order they were put among equal priorities:
    ``RedisPriorityQueue(redis, rkey, value_type)``, ``put(value, priority)``; ``len(q)`` is ``q.qsize()``."""

    def __len__(self) -> int:
        return self.qsize()
