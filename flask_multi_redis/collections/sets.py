"""RedisSet and RedisSortedSet: typed Redis sets, with (in sync code) Python's set protocol where it fits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from .base import PAGE, Collection
from .operation import Op, Page, Sync, operation, paged
from .values import T

__all__ = ["RedisSet", "RedisSortedSet", "SetOperations", "SortedSetOperations"]


class SetOperations(Collection[T]):
    """The operations of a typed set, for :class:`RedisSet` and its asyncio twin."""

    @operation
    def add(self, *values: T) -> Op[int]:
        """Add values, in one command; how many were new."""
        return (yield from self._add(values))

    @operation
    def update(self, values: Iterable[T]) -> Op[int]:
        """Add every value of ``values``, in one command; how many were new."""
        return (yield from self._add(values))

    def _add(self, values: Iterable[T]) -> Op[int]:
        encoded = self.values.dump_all(values)
        return int((yield self.redis.sadd(self.key, *encoded))) if encoded else 0

    @operation
    def remove(self, *values: T) -> Op[int]:
        """Take values out; how many were there (0 when none was: no error)."""
        encoded = self.values.dump_all(values)
        return int((yield self.redis.srem(self.key, *encoded))) if encoded else 0

    @operation
    def contains(self, value: T) -> Op[bool]:
        """Whether ``value`` is in the set."""
        return bool((yield self.redis.sismember(self.key, self.values.dump(value))))

    @operation
    def pop(self) -> Op[T | None]:
        """Take out a value chosen at random; None when the set is empty."""
        data = yield self.redis.spop(self.key)
        return None if data is None else (yield from self._taken(data))

    @operation
    def len(self) -> Op[int]:
        """How many values the set has."""
        return int((yield self.redis.scard(self.key)))

    @operation
    def members(self) -> Op[list[T]]:
        """Every value, in one read (for a small set; iterate for a large one); a list, as dicts and models
        cannot be members of a Python set."""
        return [self.values.load(data) for data in (yield self.redis.smembers(self.key))]

    @paged
    def _values(self, cursor: int) -> Op[Page[T]]:
        cursor, found = yield self.redis.sscan(self.key, cursor, count=PAGE)
        return [self.values.load(data) for data in found], cursor or None


class RedisSet(SetOperations[T], Sync):
    """A set of ``value_type`` values: ``RedisSet(redis, rkey, value_type)``; ``len``, ``in`` and iteration
    (SSCAN, in pages) work as on a set."""

    def __len__(self) -> int:
        return self.len()

    def __contains__(self, value: object) -> bool:
        try:
            return self.contains(value)  # type: ignore[arg-type]
        except ValueError:
            return False

    def __iter__(self) -> Iterator[T]:
        return self._values()


class SortedSetOperations(Collection[T]):
    """The operations of a typed sorted set, for :class:`RedisSortedSet` and its asyncio twin."""

    @operation
    def add(self, value: T, score: float) -> Op[bool]:
        """Add ``value`` with ``score`` (or change its score); True when it is new."""
        return bool((yield self.redis.zadd(self.key, {self.values.dump(value): score})))

    @operation
    def update(self, scores: Mapping[T, float] | Iterable[tuple[T, float]]) -> Op[int]:
        """Add or rescore many values in one command; how many were new."""
        pairs = scores.items() if isinstance(scores, Mapping) else scores
        encoded = {self.values.dump(value): score for value, score in pairs}
        return int((yield self.redis.zadd(self.key, encoded))) if encoded else 0

    @operation
    def score(self, value: T) -> Op[float | None]:
        """The value's score, or None when it is not in the set."""
        found = yield self.redis.zscore(self.key, self.values.dump(value))
        return None if found is None else float(found)

    @operation
    def rank(self, value: T) -> Op[int | None]:
        """The value's position by score (0: the lowest), or None when it is not in the set."""
        found = yield self.redis.zrank(self.key, self.values.dump(value))
        return None if found is None else int(found)

    @operation
    def remove(self, *values: T) -> Op[int]:
        """Take values out; how many were there."""
        encoded = self.values.dump_all(values)
        return int((yield self.redis.zrem(self.key, *encoded))) if encoded else 0

    @operation
    def range(
        self, start: int = 0, stop: int = -1, *, with_scores: bool = False
    ) -> Op[list[T] | list[tuple[T, float]]]:
        """Values by position in score order, ``start`` to ``stop`` inclusive (as ZRANGE; negative from the end)."""
        found = yield self.redis.zrange(self.key, start, stop, withscores=with_scores)
        if with_scores:
            return [(self.values.load(data), float(score)) for data, score in found]
        return [self.values.load(data) for data in found]

    @operation
    def by_score(self, low: float, high: float) -> Op[list[T]]:
        """Values whose score is from ``low`` to ``high``, inclusive, in score order."""
        return [self.values.load(data) for data in (yield self.redis.zrangebyscore(self.key, low, high))]

    @operation
    def len(self) -> Op[int]:
        """How many values the sorted set has."""
        return int((yield self.redis.zcard(self.key)))

    @paged
    def _values(self, start: int) -> Op[Page[T]]:
        page = yield self.redis.zrange(self.key, start, start + PAGE - 1)
        return [self.values.load(data) for data in page], (start + PAGE if len(page) == PAGE else None)


class RedisSortedSet(SortedSetOperations[T], Sync):
    """Values with a score, kept in score order: ``RedisSortedSet(redis, rkey, value_type)``; ``len``, ``in``
    and iteration (in score order, in pages) work as on a set."""

    def __len__(self) -> int:
        return self.len()

    def __contains__(self, value: object) -> bool:
        try:
            return self.score(value) is not None  # type: ignore[arg-type]
        except ValueError:
            return False

    def __iter__(self) -> Iterator[T]:
        """The values in score order, read :data:`PAGE` at a time."""
        return self._values()
