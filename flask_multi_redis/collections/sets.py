"""RedisSet and RedisSortedSet: typed Redis sets, with Python's set protocol where it fits."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from .base import PAGE, Collection
from .values import T

__all__ = ["RedisSet", "RedisSortedSet"]


class RedisSet(Collection[T]):
    """A set of ``value_type`` values: ``RedisSet(redis, rkey, value_type)``; ``len``, ``in`` and iteration
    (SSCAN, in pages) work as on a set."""

    def add(self, *values: T) -> int:
        """Add values, in one command; how many were new."""
        encoded = [self.values.dump(value) for value in values]
        return int(self.redis.sadd(self.key, *encoded)) if encoded else 0

    def update(self, values: Iterable[T]) -> int:
        return self.add(*values)

    def remove(self, *values: T) -> int:
        """Take values out; how many were there (0 when none was: no error)."""
        encoded = [self.values.dump(value) for value in values]
        return int(self.redis.srem(self.key, *encoded)) if encoded else 0

    def contains(self, value: T) -> bool:
        return bool(self.redis.sismember(self.key, self.values.dump(value)))

    def pop(self) -> T | None:
        """Take out a value chosen at random; None when the set is empty."""
        data = self.redis.spop(self.key)
        return None if data is None else self.values.load(data)

    def len(self) -> int:
        return int(self.redis.scard(self.key))

    def members(self) -> list[T]:
        """Every value, in one read (for a small set; iterate for a large one); a list, as dicts and models
        cannot be members of a Python set."""
        return [self.values.load(data) for data in self.redis.smembers(self.key)]

    def __len__(self) -> int:
        return self.len()

    def __contains__(self, value: object) -> bool:
        try:
            return self.contains(value)  # type: ignore[arg-type]
        except ValueError:
            return False

    def __iter__(self) -> Iterator[T]:
        return (self.values.load(data) for data in self.redis.sscan_iter(self.key, count=PAGE))


class RedisSortedSet(Collection[T]):
    """Values with a score, kept in score order: ``RedisSortedSet(redis, rkey, value_type)``."""

    def add(self, value: T, score: float) -> bool:
        """Add ``value`` with ``score`` (or change its score); True when it is new."""
        return bool(self.redis.zadd(self.key, {self.values.dump(value): score}))

    def update(self, scores: Mapping[T, float] | Iterable[tuple[T, float]]) -> int:
        """Add or rescore many values in one command; how many were new."""
        pairs = scores.items() if isinstance(scores, Mapping) else scores
        encoded = {self.values.dump(value): score for value, score in pairs}
        return int(self.redis.zadd(self.key, encoded)) if encoded else 0

    def score(self, value: T) -> float | None:
        """The value's score, or None when it is not in the set."""
        found = self.redis.zscore(self.key, self.values.dump(value))
        return None if found is None else float(found)

    def rank(self, value: T) -> int | None:
        """The value's position by score (0: the lowest), or None when it is not in the set."""
        found = self.redis.zrank(self.key, self.values.dump(value))
        return None if found is None else int(found)

    def remove(self, *values: T) -> int:
        encoded = [self.values.dump(value) for value in values]
        return int(self.redis.zrem(self.key, *encoded)) if encoded else 0

    def range(self, start: int = 0, stop: int = -1, *, with_scores: bool = False) -> list[T] | list[tuple[T, float]]:
        """Values by position in score order, ``start`` to ``stop`` inclusive (as ZRANGE; negative from the end)."""
        found = self.redis.zrange(self.key, start, stop, withscores=with_scores)
        if with_scores:
            return [(self.values.load(data), float(score)) for data, score in found]
        return [self.values.load(data) for data in found]

    def by_score(self, low: float, high: float) -> list[T]:
        """Values whose score is from ``low`` to ``high``, inclusive, in score order."""
        return [self.values.load(data) for data in self.redis.zrangebyscore(self.key, low, high)]

    def len(self) -> int:
        return int(self.redis.zcard(self.key))

    def __len__(self) -> int:
        return self.len()

    def __contains__(self, value: object) -> bool:
        try:
            return self.score(value) is not None  # type: ignore[arg-type]
        except ValueError:
            return False

    def __iter__(self) -> Iterator[T]:
        """The values in score order, read :data:`PAGE` at a time."""
        start = 0
        while True:
            page = self.redis.zrange(self.key, start, start + PAGE - 1)
            yield from (self.values.load(data) for data in page)
            if len(page) < PAGE:
                return
            start += PAGE
