"""RedisList: a typed Redis list with the methods of purse's ``RedisList`` and, in sync code, Python's list
protocol."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator
from typing import overload

import redis

from .base import PAGE, Collection
from .operation import Op, Page, Sync, operation, paged
from .values import T

__all__ = ["ListOperations", "RedisList"]

# Insert at an index (Redis has LINSERT only before or after a value): cut the tail, push, put the tail back.
_INSERT = """
local n = redis.call('LLEN', KEYS[1])
local at = tonumber(ARGV[1])
if at < 0 then at = math.max(0, n + at) end
if at == 0 then return redis.call('LPUSH', KEYS[1], ARGV[2]) end
if at >= n then return redis.call('RPUSH', KEYS[1], ARGV[2]) end
local tail = redis.call('LRANGE', KEYS[1], at, -1)
redis.call('LTRIM', KEYS[1], 0, at - 1)
redis.call('RPUSH', KEYS[1], ARGV[2])
for i = 1, #tail, 1000 do redis.call('RPUSH', KEYS[1], unpack(tail, i, math.min(i + 999, #tail))) end
return n + 1
"""


class ListOperations(Collection[T]):
    """The operations of a typed list, for :class:`RedisList` and its asyncio twin."""

    @operation
    def append(self, value: T) -> Op[int]:
        """Add ``value`` at the end; the new length."""
        return int((yield self.redis.rpush(self.key, self.values.dump(value, "append"))))

    @operation
    def appendleft(self, value: T) -> Op[int]:
        """Add ``value`` at the start; the new length."""
        return int((yield self.redis.lpush(self.key, self.values.dump(value, "appendleft"))))

    @operation
    def extend(self, values: Iterable[T]) -> Op[int]:
        """Add every value at the end, in one command (nothing is written if one does not fit); the new length."""
        encoded = self.values.dump_all(values)  # all checked before anything is sent (errors name the position)
        return int((yield self.redis.rpush(self.key, *encoded) if encoded else self.redis.llen(self.key)))

    @operation
    def insert(self, index: int, value: T) -> Op[int]:
        """Put ``value`` before position ``index`` (negative: from the end; past the end: at the end), as
        ``list.insert`` does, in one atomic step; the new length."""
        data = self.values.dump(value, index)
        return int((yield self.redis.eval(_INSERT, 1, self.key, index, data)))

    @operation
    def getitem(self, index: int) -> Op[T]:
        """The value at ``index`` (negative: from the end).

        :raises IndexError: there is none.
        """
        data = yield self.redis.lindex(self.key, index)
        if data is None:
            raise IndexError(f"{self.key}[{index}]: list index out of range")
        return self.values.load(data, index)

    @operation
    def slice(self, start: int = 0, stop: int | None = None) -> Op[list[T]]:
        """The values from ``start`` up to, not including, ``stop`` (Python's slice rules, negative indexes
        too), in one read."""
        if stop == 0:
            return []
        end = -1 if stop is None else stop - 1  # LRANGE's end is inclusive
        found = yield self.redis.lrange(self.key, start, end)
        return [self.values.load(data, start + offset) for offset, data in enumerate(found)]

    @operation
    def index(self, value: T) -> Op[int | None]:
        """The position of the first ``value``, or None when it is not in the list."""
        found = yield self.redis.lpos(self.key, self.values.dump(value))
        return None if found is None else int(found)

    @operation
    def contains(self, value: T) -> Op[bool]:
        """Whether ``value`` is in the list."""
        return (yield self.redis.lpos(self.key, self.values.dump(value))) is not None

    @operation
    def remove(self, value: T, count: int = 1) -> Op[int]:
        """Take out the first ``count`` copies of ``value`` (0: all); how many were taken (0 when absent)."""
        return int((yield self.redis.lrem(self.key, count, self.values.dump(value))))

    @operation
    def pop(self) -> Op[T | None]:
        """Take the last value; None when the list is empty."""
        data = yield self.redis.rpop(self.key)
        return None if data is None else (yield from self._taken(data, -1))

    @operation
    def popleft(self) -> Op[T | None]:
        """Take the first value; None when the list is empty."""
        data = yield self.redis.lpop(self.key)
        return None if data is None else (yield from self._taken(data, 0))

    @operation
    def len(self) -> Op[int]:
        """How many values the list has."""
        return int((yield self.redis.llen(self.key)))

    @operation
    def set(self, index: int, value: T) -> Op[None]:
        """Replace the value at ``index``.

        :raises IndexError: there is none.
        """
        data = self.values.dump(value, index)
        try:
            yield self.redis.lset(self.key, index, data)
        except redis.ResponseError as exc:
            if str(exc) not in ("index out of range", "no such key"):  # WRONGTYPE, OOM, NOPERM: as they are
                raise
            raise IndexError(f"{self.key}[{index}]: list assignment index out of range") from exc

    @paged
    def _values(self, start: int) -> Op[Page[T]]:
        page = yield self.redis.lrange(self.key, start, start + PAGE - 1)
        values = [self.values.load(data, start + offset) for offset, data in enumerate(page)]
        return values, (start + PAGE if len(page) == PAGE else None)


class RedisList(ListOperations[T], Sync):
    """A list of ``value_type`` values in the Redis list ``rkey``: ``RedisList(redis, rkey, value_type)``.

    ``len(lst)``, ``value in lst``, ``lst[i]`` (and slices), ``lst[i] = value`` and iteration (in pages of
    :data:`PAGE`) work as on a Python list; negative indexes count from the end.
    """

    def __len__(self) -> int:
        return self.len()

    def __contains__(self, value: object) -> bool:
        try:
            return self.contains(value)  # type: ignore[arg-type]
        except ValueError:  # not of the list's type: not in it
            return False

    @overload
    def __getitem__(self, index: int) -> T: ...
    @overload
    def __getitem__(self, index: builtins.slice) -> list[T]: ...
    def __getitem__(self, index: int | builtins.slice) -> T | list[T]:
        if isinstance(index, builtins.slice):
            if index.step not in (None, 1):
                return self.slice(0)[index]
            return self.slice(index.start or 0, index.stop)
        return self.getitem(index)

    def __setitem__(self, index: int, value: T) -> None:
        self.set(index, value)

    def __iter__(self) -> Iterator[T]:
        """The values in order, read :data:`PAGE` at a time."""
        return self._values()
