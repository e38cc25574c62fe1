"""What every typed collection shares: its client and key (the session's PREFIX applied), its value type, and
the key's time to live. Each operation is written once (see :mod:`.operation`), for the sync and the asyncio
collections alike."""

from __future__ import annotations

from typing import Any, Generic

from flask_multi_redis.cluster import companion_key
from flask_multi_redis.errors import CollectionValueError

from .operation import Op, check_client, operation
from .values import T, Values

__all__ = ["PAGE", "Collection", "text"]

#: How many elements one read of an iteration takes (iteration reads in pages, never the whole collection).
PAGE = 500


def text(name: bytes | str, where: str) -> str:
    """A field or key name as str, from a client that decodes responses or one that does not.

    :raises CollectionValueError: the name is not UTF-8 (written by someone else; ``where`` names the key).
    """
    if isinstance(name, str):
        return name
    try:
        return name.decode()
    except UnicodeDecodeError:
        raise CollectionValueError(f"{where}: a {len(name)}-byte name that is not UTF-8 text") from None


class Collection(Generic[T]):
    """A Redis key holding values of ``value_type``, through ``redis`` (a session from ``getRedis()``, any
    redis-py client, or for :mod:`flask_multi_redis.collections.asyncio` a ``redis.asyncio`` one); the key gets
    the client's PREFIX (``PREFIX:rkey``) when it has one, as a session does."""

    def __init__(self, redis: Any, rkey: str, value_type: type[T]) -> None:
        self.redis: Any = redis  # a redis.Redis, a RedisCluster, their asyncio twins, or a client with their commands
        check_client(self, redis)
        prefix = getattr(redis, "prefix", "")
        self.rkey = rkey
        self.key = f"{prefix}:{rkey}" if prefix else rkey
        self.values: Values[T] = Values(value_type, self.key)
        self.value_type = value_type

    def _taken(self, data: bytes, at: object = None) -> Op[T]:
        """A value already taken out of Redis (a pop), decoded. One that does not decode (written by someone
        else, or before the type changed) is not lost: it is pushed onto the list ``{<key>}:invalid`` first.

        :raises CollectionValueError: it does not decode; the error names where it was kept.
        """
        try:
            return self.values.load(data, at)
        except CollectionValueError as exc:
            kept = companion_key(self.key, "invalid")
            yield self.redis.rpush(kept, data)
            raise CollectionValueError(f"{exc}; it was taken out and kept in {kept}") from None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r} of {self.value_type.__name__}>"

    @operation
    def clear(self) -> Op[None]:
        """Delete the whole collection."""
        yield self.redis.delete(self.key)

    @operation
    def expire(self, seconds: float) -> Op[bool]:
        """Delete the collection after ``seconds`` (from now); False when it does not exist."""
        return bool((yield self.redis.pexpire(self.key, int(seconds * 1000))))

    @operation
    def persist(self) -> Op[bool]:
        """Keep the collection for good (no TTL); False when it had none, or does not exist."""
        return bool((yield self.redis.persist(self.key)))

    @operation
    def ttl(self) -> Op[float | None]:
        """Seconds the collection has left; None when it has no TTL or does not exist."""
        left = int((yield self.redis.pttl(self.key)))
        return None if left < 0 else left / 1000
