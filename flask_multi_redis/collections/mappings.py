"""RedisHash: a typed Redis hash with the methods of purse's ``RedisHash`` and, in sync code, Python's mapping
protocol; and RedisKeySpace, a typed namespace of keys with TTLs and pattern scans."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, Generic

from redis.exceptions import RedisClusterException

from .base import PAGE, Collection, text
from .operation import Op, Page, Sync, check_client, operation, paged
from .values import T, Values

__all__ = ["HashOperations", "KeySpaceOperations", "RedisHash", "RedisKeySpace"]

_GLOB = re.compile(r"[*?\[\]\\]")  # what SCAN MATCH reads as a pattern
_NODE = 1 << 64  # a SCAN cursor is below this: a cluster scan's position is node index * _NODE + node's cursor


def _glob_escaped(name: str) -> str:
    """``name`` matched as it is by SCAN MATCH (a space named ``tenant[1]`` is not the pattern ``tenant1``)."""
    return _GLOB.sub(lambda found: "\\" + found.group(), name)


class HashOperations(Collection[T]):
    """The operations of a typed hash, for :class:`RedisHash` and its asyncio twin."""

    @operation
    def set(self, field: str, value: T) -> Op[bool]:
        """Set one field; True when it is new."""
        return bool((yield self.redis.hset(self.key, field, self.values.dump(value, field))))

    @operation
    def get(self, field: str, default: T | None = None) -> Op[T | None]:
        """The field's value, or ``default`` when there is no such field."""
        data = yield self.redis.hget(self.key, field)
        return default if data is None else self.values.load(data, field)

    @operation
    def update(self, mapping: Mapping[str, T]) -> Op[int]:
        """Set every field of ``mapping`` in one command (nothing is written if one value does not fit); how
        many were new."""
        encoded = {field: self.values.dump(value, field) for field, value in mapping.items()}
        return int((yield self.redis.hset(self.key, mapping=encoded))) if encoded else 0

    @operation
    def getmany(self, *fields: str) -> Op[list[T | None]]:
        """Several fields' values in one read (None for those that are missing)."""
        found = (yield self.redis.hmget(self.key, list(fields))) if fields else []
        return [
            None if data is None else self.values.load(data, field) for field, data in zip(fields, found, strict=True)
        ]

    @operation
    def delete(self, *fields: str) -> Op[int]:
        """Remove fields; how many there were."""
        return int((yield self.redis.hdel(self.key, *fields))) if fields else 0

    @operation
    def contains(self, field: str) -> Op[bool]:
        """Whether the hash has ``field``."""
        return bool((yield self.redis.hexists(self.key, field)))

    @operation
    def len(self) -> Op[int]:
        """How many fields the hash has."""
        return int((yield self.redis.hlen(self.key)))

    def _items_page(self, cursor: int) -> Op[Page[tuple[str, T]]]:
        """Every (field, value), read in pages (HSCAN: a field changed meanwhile may come twice or not at all,
        as SCAN says)."""
        cursor, found = yield self.redis.hscan(self.key, cursor, count=PAGE)
        named = [(text(field, self.key), data) for field, data in found.items()]
        return [(name, self.values.load(data, name)) for name, data in named], cursor or None

    items = paged(_items_page)

    @paged
    def keys(self, cursor: int) -> Op[Page[str]]:
        """Every field's name, read in pages (HSCAN)."""
        cursor, found = yield self.redis.hscan(self.key, cursor, count=PAGE)
        return [text(field, self.key) for field in found], cursor or None

    @operation
    def todict(self) -> Op[dict[str, T]]:
        """The whole hash as a dict (read in pages)."""
        whole: dict[str, T] = {}
        cursor: int | None = 0
        while cursor is not None:
            page, cursor = yield from self._items_page(cursor)
            whole.update(page)
        return whole


class RedisHash(HashOperations[T], Sync):
    """Fields of a Redis hash holding ``value_type`` values: ``RedisHash(redis, rkey, value_type)``.

    ``len(h)``, ``field in h``, ``h[field]``, ``h[field] = value``, ``del h[field]`` and iteration over the
    fields (HSCAN, in pages) work as on a dict.
    """

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


class KeySpaceOperations(Generic[T]):
    """The operations of a typed key space, for :class:`RedisKeySpace` and its asyncio twin."""

    def __init__(self, redis: Any, rkey: str, value_type: type[T]) -> None:
        self.redis: Any = redis
        check_client(self, redis)
        prefix = getattr(redis, "prefix", "")
        self.space = f"{prefix}:{rkey}" if prefix else rkey
        self.values: Values[T] = Values(value_type, self.space)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.space!r} of {self.values.value_type.__name__}>"

    def _key(self, name: str) -> str:
        return f"{self.space}:{name}"

    @operation
    def set(self, name: str, value: T, ttl: float | None = None, *, only_new: bool = False) -> Op[bool]:
        """Store ``value`` under ``name`` (for ``ttl`` seconds, else for good); with ``only_new``, only when
        there is none yet. True when it was stored."""
        data = self.values.dump(value, name)
        px = None if ttl is None else int(ttl * 1000)
        return bool((yield self.redis.set(self._key(name), data, px=px, nx=only_new)))

    @operation
    def get(self, name: str, default: T | None = None) -> Op[T | None]:
        """The value under ``name``, or ``default`` when there is none."""
        data = yield self.redis.get(self._key(name))
        return default if data is None else self.values.load(data, name)

    @operation
    def getmany(self, *names: str) -> Op[list[T | None]]:
        """Several values in one read (None for those that are missing; on a cluster, one read per slot)."""
        return (yield from self._read(names))

    def _read(self, names: tuple[str, ...]) -> Op[list[T | None]]:
        if not names:
            return []
        read = getattr(self.redis, "mget_nonatomic", None) or self.redis.mget  # a cluster: keys of many slots
        found = yield read([self._key(name) for name in names])
        return [None if data is None else self.values.load(data, name) for name, data in zip(names, found, strict=True)]

    @operation
    def delete(self, *names: str) -> Op[int]:
        """Remove names; how many there were."""
        return int((yield self.redis.delete(*(self._key(name) for name in names)))) if names else 0

    @operation
    def contains(self, name: str) -> Op[bool]:
        """Whether there is a value under ``name``."""
        return bool((yield self.redis.exists(self._key(name))))

    @operation
    def ttl(self, name: str) -> Op[float | None]:
        """Seconds ``name`` has left; None when it has no TTL or does not exist."""
        left = int((yield self.redis.pttl(self._key(name))))
        return None if left < 0 else left / 1000

    @operation
    def expire(self, name: str, seconds: float) -> Op[bool]:
        """Delete ``name`` after ``seconds``; False when it does not exist."""
        return bool((yield self.redis.pexpire(self._key(name), int(seconds * 1000))))

    def _scan_page(self, position: int, pattern: str = "*") -> Op[Page[str]]:
        """The names in the space that match ``pattern`` (glob-style, as SCAN MATCH), read in pages (on a
        cluster, every primary in turn: a failover or resharding meanwhile may skip or repeat names, as SCAN
        may, or end the scan with ``RedisClusterException``)."""
        match, lead = f"{_glob_escaped(self.space)}:{pattern}", len(self.space) + 1
        if not hasattr(self.redis, "get_primaries"):
            cursor, keys = yield self.redis.scan(position, match=match, count=PAGE)
            return [text(key, self.space)[lead:] for key in keys], cursor or None
        primaries = sorted(self.redis.get_primaries(), key=lambda node: node.name)
        at, cursor = divmod(position, _NODE)
        if at >= len(primaries):
            raise RedisClusterException(f"{self.space}: the cluster's primaries changed during a scan; scan again")
        cursors, keys = yield self.redis.scan(cursor, match=match, count=PAGE, target_nodes=primaries[at])
        cursor = next(iter(cursors.values()))
        if cursor == 0:
            at, cursor = at + 1, 0
        return [text(key, self.space)[lead:] for key in keys], (at * _NODE + cursor if at < len(primaries) else None)

    scan = paged(_scan_page)

    @paged
    def items(self, position: int, pattern: str = "*") -> Op[Page[tuple[str, T]]]:
        """(name, value) for the names matching ``pattern``, a page of names and one read of their values at a
        time; names deleted meanwhile are left out."""
        names, after = yield from self._scan_page(position, pattern)
        values = yield from self._read(tuple(names))
        return [(name, value) for name, value in zip(names, values, strict=True) if value is not None], after


class RedisKeySpace(KeySpaceOperations[T], Sync):
    """Typed values under keys ``PREFIX:rkey:<name>``: ``RedisKeySpace(redis, rkey, value_type)``; each key has
    a TTL of its own, and ``scan`` lists the names matching a pattern. ``name in space``, ``space[name]``,
    ``space[name] = value`` and ``del space[name]`` work as on a dict."""

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.contains(name)

    __iter__ = None  # iterate over space.scan(): without this, Python would try space[0], space[1], ...

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
