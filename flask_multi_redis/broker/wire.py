"""A connection the broker speaks to directly: hiredis packs the commands and parses the replies.

A command through a redis-py client pays for the pool checkout (with its readiness check), retries,
instrumentation and reply callbacks: on a local server that is about as much again as the round trip itself.
The broker's hot connections (the lanes, the reply wait, the listener) are made by redis-py exactly as the
session's configuration says (address, TLS, credentials, protocol, database, client name), and from then on
written and read here. Nothing is retried at this level: the caller knows what is safe to repeat.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterable, Sequence
from typing import Any

import hiredis
import redis
from redis.connection import AbstractConnection
from redis.exceptions import NoScriptError

__all__ = ["Wire"]

_BUFFER = 65536


class Wire:
    """One connection made like ``client``'s, opened on first use and after :meth:`close`.

    Not thread-safe: its owner (a lane, the one waiting call, the listener) serializes its use.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.last_used = time.monotonic()
        self._connection: AbstractConnection | None = None
        self._sock: socket.socket | None = None
        self._timeout: float | None = None
        self._reader = hiredis.Reader()
        self._buffer = bytearray(_BUFFER)

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def send(self, commands: Iterable[Sequence[Any]]) -> None:
        """Write ``commands`` in one go, connecting first if need be."""
        sock = self._sock if self._sock is not None else self._connect()
        self.last_used = time.monotonic()
        packed = b"".join([hiredis.pack_command(tuple(command)) for command in commands])
        try:
            sock.sendall(packed)
        except OSError as exc:
            self.close()
            raise redis.ConnectionError(f"writing to Redis failed: {type(exc).__name__}") from exc

    def read(self, timeout: float | None = None) -> Any:
        """The next reply; an error reply is returned as a :class:`redis.ResponseError`, not raised.

        :param timeout: seconds to wait for it; by default the connection's socket timeout.
        :raises redis.TimeoutError: nothing came in time. The connection stays usable: what was read so far
            is kept for the next call.
        :raises redis.ConnectionError: the connection is lost (it is closed).
        """
        sock = self._sock
        if sock is None:
            raise redis.ConnectionError("not connected to Redis")
        reply = self._reader.gets()
        while reply is False:
            wanted = self._timeout if timeout is None else timeout
            if sock.gettimeout() != wanted:
                sock.settimeout(wanted)
            try:
                count = sock.recv_into(self._buffer)
            except TimeoutError as exc:
                raise redis.TimeoutError("no reply from Redis in time") from exc
            except OSError as exc:
                self.close()
                raise redis.ConnectionError(f"reading from Redis failed: {type(exc).__name__}") from exc
            if not count:
                self.close()
                raise redis.ConnectionError("Redis closed the connection")
            self._reader.feed(self._buffer, 0, count)  # type: ignore[arg-type]  # any buffer will do
            reply = self._reader.gets()
        if isinstance(reply, hiredis.ReplyError):
            message = str(reply)
            return NoScriptError(message) if message.startswith("NOSCRIPT") else redis.ResponseError(message)
        return reply

    def round_trip(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send ``commands`` and read their replies, in order (error replies among them, not raised).

        Anything else that goes wrong, an interruption half-way included, closes the connection: its replies
        would no longer match the commands.
        """
        try:
            self.send(commands)
            return [self.skip_pushes() for _ in commands]
        except BaseException:
            self.close()
            raise

    def skip_pushes(self) -> Any:
        """The next reply that is not a RESP3 push (an out-of-band notification no command asked for)."""
        reply = self.read()
        while isinstance(reply, hiredis.PushNotification):
            reply = self.read()
        return reply

    def reset_if_stale(self) -> None:
        """Close the connection if something is waiting on it before we asked: a connection the server closed
        while it was idle (restart, CLIENT KILL, idle timeout) reads as ready, and writing to it would fail."""
        sock = self._sock
        if sock is None:
            return
        try:
            readable = select.select([sock], [], [], 0)[0]
        except (OSError, ValueError):
            readable = [sock]
        if readable:
            self.close()

    def close(self) -> None:
        connection, self._connection, self._sock = self._connection, None, None
        self._reader = hiredis.Reader()
        if connection is not None:
            connection.disconnect()  # type: ignore[no-untyped-call]

    def _connect(self) -> socket.socket:
        pool = self.client.connection_pool
        connection = pool.connection_class(**pool.connection_kwargs)
        connection.connect()  # the handshake: TLS, credentials, protocol, database, client name
        sock: socket.socket | None = connection._sock  # from here on, this module speaks on the socket
        if sock is None:
            raise redis.ConnectionError("redis-py connected without a socket")
        self._connection, self._sock, self._timeout = connection, sock, sock.gettimeout()
        self._reader = hiredis.Reader()
        self.last_used = time.monotonic()
        return sock
