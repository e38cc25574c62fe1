"""What every typed collection shares: its client and key (the session's PREFIX applied), its value type, and
the key's time to live."""

from __future__ import annotations

from typing import Any, Generic

import redis

from .values import T, Values

__all__ = ["PAGE", "Collection"]

#: How many elements one read of an iteration takes (iteration reads in pages, never the whole collection).
PAGE = 500


class Collection(Generic[T]):
    """A Redis key holding values of ``value_type``, through ``redis`` (a session from ``getRedis()`` or any
    redis-py client); the key gets the session's PREFIX (``PREFIX:rkey``) when it has one."""

    def __init__(self, redis: redis.Redis | Any, rkey: str, value_type: type[T]) -> None:
        self.redis: Any = redis  # a redis.Redis, a RedisCluster, or any client with their commands
        prefix = getattr(redis, "prefix", "")
        self.rkey = rkey
        self.key = f"{prefix}:{rkey}" if prefix else rkey
        self.values: Values[T] = Values(value_type, self.key)
        self.value_type = value_type

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r} of {self.value_type.__name__}>"

    def clear(self) -> None:
        """Delete the whole collection."""
        self.redis.delete(self.key)

    def expire(self, seconds: float) -> bool:
        """Delete the collection after ``seconds`` (from now); False when it does not exist."""
        return bool(self.redis.pexpire(self.key, int(seconds * 1000)))

    def persist(self) -> bool:
        """Keep the collection for good (no TTL); False when it had none, or does not exist."""
        return bool(self.redis.persist(self.key))

    def ttl(self) -> float | None:
        """Seconds the collection has left; None when it has no TTL or does not exist."""
        left = int(self.redis.pttl(self.key))
        return None if left < 0 else left / 1000
