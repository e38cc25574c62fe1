"""RedisList: a typed Redis list with the methods of purse's ``RedisList`` and Python's list protocol."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Iterator
from typing import overload

import redis

from .base import PAGE, Collection
from .values import T

__all__ = ["RedisList"]

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


class RedisList(Collection[T]):
    """A list of ``value_type`` values in the Redis list ``rkey``: ``RedisList(redis, rkey, value_type)``.

    ``len(lst)``, ``value in lst``, ``lst[i]`` (and slices), ``lst[i] = value`` and iteration (in pages of
    :data:`PAGE`) work as on a Python list; negative indexes count from the end.
    """

    def append(self, value: T) -> int:
        """Add ``value`` at the end; the new length."""
        return int(self.redis.rpush(self.key, self.values.dump(value, "append")))

    def appendleft(self, value: T) -> int:
        """Add ``value`` at the start; the new length."""
        return int(self.redis.lpush(self.key, self.values.dump(value, "appendleft")))

    def extend(self, values: Iterable[T]) -> int:
        """Add every value at the end, in one command (nothing is written if one does not fit); the new length."""
        encoded = self.values.dump_all(list(values), self.len())
        return int(self.redis.rpush(self.key, *encoded)) if encoded else self.len()

    def insert(self, index: int, value: T) -> int:
        """Put ``value`` before position ``index`` (negative: from the end; past the end: at the end), as
        ``list.insert`` does, in one atomic step; the new length."""
        data = self.values.dump(value, index)
        return int(self.redis.eval(_INSERT, 1, self.key, index, data))

    def getitem(self, index: int) -> T:
        """The value at ``index`` (negative: from the end).

        :raises IndexError: there is none.
        """
        data = self.redis.lindex(self.key, index)
        if data is None:
            raise IndexError(f"{self.key}[{index}]: list index out of range")
        return self.values.load(data, index)

    def slice(self, start: int = 0, stop: int | None = None) -> list[T]:
        """The values from ``start`` up to, not including, ``stop`` (Python's slice rules, negative indexes
        too), in one read."""
        if stop == 0:
            return []
        found = self.redis.lrange(self.key, start, -1 if stop is None else stop - 1)  # LRANGE's end is inclusive
        return [self.values.load(data, start + offset) for offset, data in enumerate(found)]

    def index(self, value: T) -> int | None:
        """The position of the first ``value``, or None when it is not in the list."""
        found = self.redis.lpos(self.key, self.values.dump(value))
        return None if found is None else int(found)

    def contains(self, value: T) -> bool:
        return self.index(value) is not None

    def remove(self, value: T, count: int = 1) -> int:
        """Take out the first ``count`` copies of ``value`` (0: all); how many were taken (0 when absent)."""
        return int(self.redis.lrem(self.key, count, self.values.dump(value)))

    def pop(self) -> T | None:
        """Take the last value; None when the list is empty."""
        data = self.redis.rpop(self.key)
        return None if data is None else self.values.load(data, -1)

    def popleft(self) -> T | None:
        """Take the first value; None when the list is empty."""
        data = self.redis.lpop(self.key)
        return None if data is None else self.values.load(data, 0)

    def len(self) -> int:
        return int(self.redis.llen(self.key))

    def set(self, index: int, value: T) -> None:
        """Replace the value at ``index``.

        :raises IndexError: there is none.
        """
        data = self.values.dump(value, index)
        try:
            self.redis.lset(self.key, index, data)
        except redis.ResponseError as exc:  # "ERR index out of range", "ERR no such key"
            raise IndexError(f"{self.key}[{index}]: list assignment index out of range") from exc

    # --- Python's protocol -------------------------------------------------------------------------------------

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
        start = 0
        while True:
            page = self.redis.lrange(self.key, start, start + PAGE - 1)
            for offset, data in enumerate(page):
                yield self.values.load(data, start + offset)
            if len(page) < PAGE:
                return
            start += PAGE
