"""Typed collections on ``redis.asyncio``, for async views, Quart and scripts: the same classes, names and
behaviour as :mod:`flask_multi_redis.collections`, each method awaited (``await lst.append(1)``), iteration with
``async for`` (in pages, as the sync collections read). Python's sync protocol (``len()``, ``in``, ``[]``) has no
awaitable form, so here it is spelt with the methods: ``len()``, ``contains()``, ``getitem()``, ``get()``.

The operations are the sync collections' own (written once, see :mod:`.operation`), so both behave alike."""

from __future__ import annotations

from collections.abc import AsyncIterator

from flask_multi_redis.errors import CollectionValueError

from .lists import ListOperations
from .mappings import HashOperations, KeySpaceOperations
from .operation import Async
from .queues import LifoQueueOperations, PriorityQueueOperations, QueueOperations
from .sets import SetOperations, SortedSetOperations
from .values import T

__all__ = [
    "CollectionValueError",
    "RedisHash",
    "RedisKeySpace",
    "RedisLifoQueue",
    "RedisList",
    "RedisPriorityQueue",
    "RedisQueue",
    "RedisSet",
    "RedisSortedSet",
]


class RedisList(ListOperations[T], Async):
    """A typed list on ``redis.asyncio``, as :class:`flask_multi_redis.collections.RedisList`:
    ``RedisList(redis, rkey, value_type)``; ``async for value in lst`` reads it in pages."""

    def __aiter__(self) -> AsyncIterator[T]:
        return self._values()


class RedisHash(HashOperations[T], Async):
    """A typed hash on ``redis.asyncio``, as :class:`flask_multi_redis.collections.RedisHash`; ``async for``
    gives its field names, ``async for field, value in h.items()`` both."""

    def __aiter__(self) -> AsyncIterator[str]:
        return self.keys()


class RedisSet(SetOperations[T], Async):
    """A typed set on ``redis.asyncio``, as :class:`flask_multi_redis.collections.RedisSet`."""

    def __aiter__(self) -> AsyncIterator[T]:
        return self._values()


class RedisSortedSet(SortedSetOperations[T], Async):
    """A typed sorted set on ``redis.asyncio``, as :class:`flask_multi_redis.collections.RedisSortedSet`;
    ``async for`` gives the values in score order."""

    def __aiter__(self) -> AsyncIterator[T]:
        return self._values()


class RedisQueue(QueueOperations[T], Async):
    """A first in, first out queue on ``redis.asyncio``: ``await q.put(v)``, ``await q.get(timeout=...)``."""


class RedisLifoQueue(LifoQueueOperations[T], Async):
    """A last in, first out queue on ``redis.asyncio``."""


class RedisPriorityQueue(PriorityQueueOperations[T], Async):
    """A priority queue on ``redis.asyncio``: the lowest priority first, FIFO among equal priorities."""


class RedisKeySpace(KeySpaceOperations[T], Async):
    """A typed key space on ``redis.asyncio``, as :class:`flask_multi_redis.collections.RedisKeySpace`:
    ``async for name in space.scan("user:*")``."""
