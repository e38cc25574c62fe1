"""A fast lane: one connection kept for the broker's hot path, used by one caller at a time.

A command through a redis-py client pays for the pool checkout (with its readiness check), retries and
instrumentation: about as much again as the round trip itself on a local server. The lane sends on a
connection of its own instead; a caller that finds it busy takes the ordinary pooled client, so nobody waits
for the lane and a process holds one connection more only while it is busy.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import redis
from redis.connection import AbstractConnection

__all__ = ["Lane"]


class Lane:
    """Runs commands on a dedicated connection made like the ``client``'s, falling back to ``client``."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._connection: AbstractConnection | None = None

    @contextlib.contextmanager
    def _held(self) -> Iterator[AbstractConnection | None]:
        """The lane's connection while this caller holds it, or None when another caller does."""
        if not self._lock.acquire(blocking=False):
            yield None
            return
        try:
            if self._connection is None:
                pool = self.client.connection_pool
                self._connection = pool.connection_class(**pool.connection_kwargs)
            yield self._connection
        finally:
            self._lock.release()

    def execute(self, *args: Any) -> Any:
        """One command; the raw reply (no redis-py response callbacks)."""
        return self.pipeline([args])[-1]

    def pipeline(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Several commands in one round trip; their raw replies, in order. An error reply raises."""
        with self._held() as connection:
            if connection is None:
                pipe = self.client.pipeline(transaction=False)
                for command in commands:
                    pipe.execute_command(*command)  # type: ignore[no-untyped-call]
                return list(pipe.execute())
            replies: list[Any] = []
            try:
                connection.send_packed_command(connection.pack_commands(commands))  # type: ignore[no-untyped-call]
                for _ in commands:
                    try:
                        replies.append(connection.read_response())
                    except redis.ResponseError as error:  # read the other replies too: the connection stays in step
                        replies.append(error)
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                connection.disconnect()  # type: ignore[no-untyped-call]
                raise
        for reply in replies:
            if isinstance(reply, redis.ResponseError):
                raise reply
        return replies

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.disconnect()  # type: ignore[no-untyped-call]
                self._connection = None
