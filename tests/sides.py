"""The two sides of the typed collections, for one behaviour suite: the sync classes on a session, and the
asyncio classes on ``redis.asyncio`` driven from the test through an event loop in a thread of its own (each
call's awaitable, or async iteration, runs there to its end; the test sees plain values and exceptions)."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar, cast

import redis.asyncio

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.collections import asyncio as async_collections

C = TypeVar("C")

#: No call of a test waits longer (a blocking get in a test waits less).
DEADLINE = 30.0


class Loop:
    """An event loop running in a thread, for the asyncio side."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="asyncio-side", daemon=True)
        self.thread.start()

    def run(self, result: Any) -> Any:
        """The value of an awaitable, or the values of an async iterator as a list; other results as they are."""
        if isinstance(result, AsyncIterator):
            result = _collect(result)
        if inspect.isawaitable(result):
            return asyncio.run_coroutine_threadsafe(_awaited(result), self.loop).result(DEADLINE)
        return result

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(DEADLINE)
        self.loop.close()


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


async def _collect(values: AsyncIterator[Any]) -> list[Any]:
    return [value async for value in values]


class Awaited:
    """An asyncio collection seen through sync calls: ``awaited.append(1)`` runs ``await collection.append(1)``
    on the loop; ``list(awaited)`` runs ``[v async for v in collection]``."""

    def __init__(self, collection: Any, loop: Loop) -> None:
        self._collection = collection
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._collection, name)
        if not callable(attribute):
            return attribute
        return lambda *args, **kwargs: self._run(attribute(*args, **kwargs))

    def _run(self, result: Any) -> Any:
        found = self._loop.run(result)
        return iter(found) if isinstance(result, AsyncIterator) else found

    def __iter__(self) -> Iterator[Any]:
        return iter(self._loop.run(aiter(self._collection)))


class Side:
    """One side: ``make(RedisList, "k", int)`` gives the sync collection, or the asyncio one of the same name
    (behind :class:`Awaited`). The sync side's session has the PREFIX ``env``; the asyncio client has none."""

    def __init__(self, name: str, url: str, loop: Loop | None) -> None:
        self.name = name
        self.url = url
        self._loop = loop
        self._clients: list[Any] = []

    @property
    def is_async(self) -> bool:
        return self._loop is not None

    def client(self, **options: Any) -> Any:
        """A client of this side: a session with the PREFIX ``env``, or a ``redis.asyncio.Redis``."""
        if self._loop is None:
            return FlaskRedisSingle({"URL": self.url, "PREFIX": "env", **options}).getRedis()
        return self.closing(redis.asyncio.Redis.from_url(self.url, **{key.lower(): v for key, v in options.items()}))

    def closing(self, client: C) -> C:
        """``client``, closed with this side."""
        self._clients.append(client)
        return client

    def make(self, kind: type[C], rkey: str, value_type: type[Any], client: Any = None) -> C:
        """A collection of ``kind`` (a sync class) on this side, on ``client`` or a new one."""
        client = self.client() if client is None else client
        if self._loop is None:
            return kind(client, rkey, value_type)  # type: ignore[call-arg]
        twin = getattr(async_collections, kind.__name__)
        return cast(C, Awaited(twin(client, rkey, value_type), self._loop))

    def close(self) -> None:
        if self._loop is not None:
            for client in self._clients:
                self._loop.run(client.aclose())
            self._loop.close()
