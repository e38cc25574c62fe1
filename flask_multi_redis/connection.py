"""Builds the redis clients of a configuration: one connection pool per server, database and settings."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import redis

from .config import DatabaseSpec
from .session import RedisSession

__all__ = ["build_sessions", "session_class"]

_classes: dict[type[redis.Redis], type[RedisSession]] = {RedisSession: RedisSession, redis.Redis: RedisSession}
_classes_lock = threading.Lock()


def session_class(client_class: type[redis.Redis]) -> type[RedisSession]:
    """A RedisSession that is also a ``client_class`` (a user's redis.Redis subclass from CLASS)."""
    with _classes_lock:
        cls = _classes.get(client_class)
        if cls is None and issubclass(client_class, RedisSession):
            cls = client_class
        if cls is None:
            name = f"RedisSession[{client_class.__name__}]"
            cls = type(name, (RedisSession, client_class), {"__module__": __name__})
            _classes[client_class] = cls
        return cls


def build_sessions(specs: Iterable[DatabaseSpec]) -> dict[str, RedisSession]:
    """One RedisSession per spec, by name. Creating clients opens no connection (no network I/O here)."""
    pools: dict[tuple[object, ...], redis.ConnectionPool] = {}
    sessions: dict[str, RedisSession] = {}
    for spec in specs:
        cls = session_class(spec.client_class)
        pool = pools.get(spec.pool_key)
        if pool is None:
            session = cls(name=spec.name, prefix=spec.prefix, **spec.kwargs)
            pools[spec.pool_key] = session.connection_pool
        else:
            session = cls(name=spec.name, prefix=spec.prefix, connection_pool=pool)
        sessions[spec.name] = session
    return sessions
