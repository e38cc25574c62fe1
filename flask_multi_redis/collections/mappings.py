"""RedisHash: a typed Redis hash with the methods of purse's ``RedisHash`` and Python's mapping protocol; and
RedisKeySpace, a typed namespace of keys with TTLs and pattern scans."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Generic

import redis

from .base import PAGE, Collection
from .values import T, Values

__all__ = ["RedisHash", "RedisKeySpace"]


class RedisHash(Collection[T]):
    """Fields of a Redis hash holding ``value_type`` values: ``RedisHash(redis, rkey, value_type)``.

    ``len(h)``, ``field in h``, ``h[field]``, ``h[field] = value``, ``del h[field]`` and iteration over the
    fields (HSCAN, in pages) work as on a dict.
    """

    def set(self, field: str, value: T) -> bool:
        """Set one field; True when it is new."""
        return bool(self.redis.hset(self.key, field, self.values.dump(value, field)))

    def get(self, field: str, default: T | None = None) -> T | None:
        """The field's value, or ``default`` when there is no such field."""
        data = self.redis.hget(self.key, field)
        return default if data is None else self.values.load(data, field)

    def update(self, mapping: Mapping[str, T]) -> int:
        """Set every field of ``mapping`` in one command (nothing is written if one value does not fit); how
        many were new."""
        encoded = {field: self.values.dump(value, field) for field, value in mapping.items()}
        return int(self.redis.hset(self.key, mapping=encoded)) if encoded else 0

    def getmany(self, *fields: str) -> list[T | None]:
        """Several fields' values in one read (None for those that are missing)."""
        found = self.redis.hmget(self.key, list(fields)) if fields else []
        return [
            None if data is None else self.values.load(data, field) for field, data in zip(fields, found, strict=True)
        ]

    def delete(self, *fields: str) -> int:
        """Remove fields; how many there were."""
        return int(self.redis.hdel(self.key, *fields)) if fields else 0

    def contains(self, field: str) -> bool:
        return bool(self.redis.hexists(self.key, field))

    def len(self) -> int:
        return int(self.redis.hlen(self.key))

    def items(self) -> Iterator[tuple[str, T]]:
        """Every (field, value), read in pages (HSCAN: a field changed meanwhile may come twice or not at all,
        as SCAN says)."""
        for field, data in self.redis.hscan_iter(self.key, count=PAGE):
            name = field.decode() if isinstance(field, bytes) else str(field)
            yield name, self.values.load(data, name)

    def keys(self) -> Iterator[str]:
        return (field for field, _ in self.items())

    def todict(self) -> dict[str, T]:
        return dict(self.items())

    def __len__(self) -> int:
        return self.len()

    def __contains__(self, field: object) -> bool:
        return isinstance(field, str) and self.contains(field)

    def __getitem__(self, field: str) -> T:
        value = self.get(field)
        if value is None:
            raise KeyError(field)
        return value

    def __setitem__(self, field: str, value: T) -> None:
        self.set(field, value)

    def __delitem__(self, field: str) -> None:
        if not self.delete(field):
            raise KeyError(field)

    def __iter__(self) -> Iterator[str]:
        return self.keys()


class RedisKeySpace(Generic[T]):
    """Typed values under keys ``PREFIX:rkey:<name>``: ``RedisKeySpace(redis, rkey, value_type)``; each key has
    a TTL of its own, and ``scan`` lists the names matching a pattern."""

    def __init__(self, redis: redis.Redis | Any, rkey: str, value_type: type[T]) -> None:
        self.redis: Any = redis
        prefix = getattr(redis, "prefix", "")
        self.space = f"{prefix}:{rkey}" if prefix else rkey
        self.values: Values[T] = Values(value_type, self.space)

    def __repr__(self) -> str:
        return f"<RedisKeySpace {self.space!r} of {self.values.value_type.__name__}>"

    def _key(self, name: str) -> str:
        return f"{self.space}:{name}"

    def set(self, name: str, value: T, ttl: float | None = None, *, only_new: bool = False) -> bool:
        """Store ``value`` under ``name`` (for ``ttl`` seconds, else for good); with ``only_new``, only when
        there is none yet. True when it was stored."""
        data = self.values.dump(value, name)
        px = None if ttl is None else int(ttl * 1000)
        return bool(self.redis.set(self._key(name), data, px=px, nx=only_new))

    def get(self, name: str, default: T | None = None) -> T | None:
        data = self.redis.get(self._key(name))
        return default if data is None else self.values.load(data, name)

    def getmany(self, *names: str) -> list[T | None]:
        """Several values in one read (None for those that are missing)."""
        keys = [self._key(name) for name in names]
        read = getattr(self.redis, "mget_nonatomic", None) or self.redis.mget  # a cluster: keys of many slots
        found = read(keys) if names else []
        return [None if data is None else self.values.load(data, name) for name, data in zip(names, found, strict=True)]

    def delete(self, *names: str) -> int:
        return int(self.redis.delete(*(self._key(name) for name in names))) if names else 0

    def contains(self, name: str) -> bool:
        return bool(self.redis.exists(self._key(name)))

    def ttl(self, name: str) -> float | None:
        """Seconds ``name`` has left; None when it has no TTL or does not exist."""
        left = int(self.redis.pttl(self._key(name)))
        return None if left < 0 else left / 1000

    def expire(self, name: str, seconds: float) -> bool:
        return bool(self.redis.pexpire(self._key(name), int(seconds * 1000)))

    def scan(self, pattern: str = "*") -> Iterator[str]:
        """The names in the space that match ``pattern`` (glob-style, as SCAN MATCH), read in pages."""
        lead = len(self.space) + 1
        for key in self.redis.scan_iter(match=f"{self.space}:{pattern}", count=PAGE):
            name = key.decode() if isinstance(key, bytes) else str(key)
            yield name[lead:]

    def items(self, pattern: str = "*") -> Iterator[tuple[str, T]]:
        """(name, value) for the names matching ``pattern``; names deleted meanwhile are left out."""
        for name in self.scan(pattern):
            value = self.get(name)
            if value is not None:
                yield name, value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.contains(name)

    def __getitem__(self, name: str) -> T:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __setitem__(self, name: str, value: T) -> None:
        self.set(name, value)

    def __delitem__(self, name: str) -> None:
        if not self.delete(name):
            raise KeyError(name)
