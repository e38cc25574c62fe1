"""Each collection operation is written once, as a generator: it yields every redis-py call it makes and is
sent the reply back. A sync client's call has already returned that reply; an asyncio client's returns an
awaitable, which the asyncio collections await. So :mod:`flask_multi_redis.collections` and
:mod:`flask_multi_redis.collections.asyncio` run the same steps and differ only in how they wait."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from types import MethodType
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

import redis
import redis.asyncio

from flask_multi_redis.commands import ForwardedCommands

__all__ = ["Async", "Op", "Page", "Sync", "check_client", "operation", "paged"]

R = TypeVar("R")
X = TypeVar("X")
P = ParamSpec("P")

#: An operation's steps: they yield each call's result and finish with the operation's result.
Op = Generator[Any, Any, R]
#: One page of an iteration: its values, and where the next page starts (None: there is no next page).
Page = tuple[list[X], int | None]


def check_client(collection: object, client: object) -> None:
    """Refuse a client of the other kind: an asyncio client's calls would come back as unawaited coroutines
    (every method would seem to succeed and send nothing), a sync client's replies would not be awaitable.

    :raises TypeError: naming the module to use instead.
    """
    is_async = isinstance(client, (redis.asyncio.Redis, redis.asyncio.RedisCluster))
    is_sync = isinstance(client, (redis.Redis, redis.RedisCluster, ForwardedCommands))
    if isinstance(collection, Sync) and is_async:
        raise TypeError(
            f"{type(collection).__name__} of flask_multi_redis.collections is sync; for a redis.asyncio client use "
            f"flask_multi_redis.collections.asyncio.{type(collection).__name__}"
        )
    if isinstance(collection, Async) and is_sync:
        raise TypeError(
            f"{type(collection).__name__} of flask_multi_redis.collections.asyncio needs a redis.asyncio client; "
            f"for a sync client use flask_multi_redis.collections.{type(collection).__name__}"
        )


class Sync:
    """How a sync collection (redis.Redis, RedisCluster, a session) runs steps: each yielded value is a reply."""

    @staticmethod
    def _run(steps: Op[R]) -> R:
        try:
            reply = next(steps)
            while True:
                reply = steps.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def _pages(self, page: Callable[..., Op[Page[X]]], *args: Any, **kwargs: Any) -> Iterator[X]:
        start: int | None = 0
        while start is not None:
            values, start = self._run(page(self, start, *args, **kwargs))
            yield from values


class Async:
    """How an asyncio collection (redis.asyncio.Redis, its RedisCluster) runs steps: each yielded value is an
    awaitable; its reply, or its exception, goes back into the steps."""

    @staticmethod
    async def _run(steps: Op[R]) -> R:
        try:
            pending = next(steps)
            while True:
                try:
                    reply = await pending
                except Exception as exc:  # raised where the call was made, as a sync client raises it
                    pending = steps.throw(exc)
                else:
                    pending = steps.send(reply)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def _pages(self, page: Callable[..., Op[Page[X]]], *args: Any, **kwargs: Any) -> AsyncIterator[X]:
        start: int | None = 0
        while start is not None:
            values, start = await self._run(page(self, start, *args, **kwargs))
            for value in values:
                yield value


class operation(Generic[P, R]):  # noqa: N801 - used as a decorator, as property is
    """Makes steps a method: on a sync collection it returns the result, on an asyncio one an awaitable of it."""

    def __init__(self, steps: Callable[Concatenate[Any, P], Op[R]]) -> None:
        self.__wrapped__ = steps
        self.__doc__ = steps.__doc__
        self.__name__ = steps.__name__

        def call(collection: Sync | Async, *args: Any, **kwargs: Any) -> Any:
            return collection._run(steps(collection, *args, **kwargs))

        call.__doc__, call.__name__ = steps.__doc__, steps.__name__
        self._call = call

    @overload
    def __get__(self, collection: None, owner: type[Any]) -> operation[P, R]: ...
    @overload
    def __get__(self, collection: Sync, owner: type[Any]) -> Callable[P, R]: ...
    @overload
    def __get__(self, collection: Async, owner: type[Any]) -> Callable[P, Awaitable[R]]: ...
    def __get__(self, collection: Sync | Async | None, owner: type[Any]) -> Any:
        return self if collection is None else MethodType(self._call, collection)


class paged(Generic[P, X]):  # noqa: N801
    """Makes the steps that read one page (given where it starts: 0 at first) an iteration over every page: an
    iterator on a sync collection, an async iterator on an asyncio one. Only one page is held at a time."""

    def __init__(self, page: Callable[Concatenate[Any, int, P], Op[Page[X]]]) -> None:
        self.__wrapped__ = page
        self.__doc__ = page.__doc__
        self.__name__ = page.__name__

    @overload
    def __get__(self, collection: None, owner: type[Any]) -> paged[P, X]: ...
    @overload
    def __get__(self, collection: Sync, owner: type[Any]) -> Callable[P, Iterator[X]]: ...
    @overload
    def __get__(self, collection: Async, owner: type[Any]) -> Callable[P, AsyncIterator[X]]: ...
    def __get__(self, collection: Sync | Async | None, owner: type[Any]) -> Any:
        if collection is None:
            return self
        page = self.__wrapped__
        return MethodType(lambda bound, *args, **kwargs: bound._pages(page, *args, **kwargs), collection)
