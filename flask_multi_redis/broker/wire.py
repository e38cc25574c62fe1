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
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
import redis
from redis import exceptions
from redis.connection import AbstractConnection

__all__ = ["Command", "Wire", "encoded", "error_code", "error_reply"]

#: A command: its name and arguments, as a tuple (what ``hiredis.pack_command`` takes).
Command = tuple[Any, ...]

_BUFFER = 65536
_INCOMPLETE = object()  # what the reader returns while a reply is not complete (a RESP3 false is False)

# The error replies redis-py raises as a class of their own, by their first word (the rest: ResponseError).
_ERRORS: dict[str, type[exceptions.RedisError]] = {
    "NOSCRIPT": exceptions.NoScriptError,
    "NOPERM": exceptions.NoPermissionError,
    "NOAUTH": exceptions.AuthenticationError,
    "WRONGPASS": exceptions.AuthenticationError,
    "LOADING": exceptions.BusyLoadingError,
    "READONLY": exceptions.ReadOnlyError,
    "OOM": exceptions.OutOfMemoryError,
    "EXECABORT": exceptions.ExecAbortError,
    "MASTERDOWN": exceptions.MasterDownError,
}


def encoded(client: redis.Redis, name: str | bytes) -> bytes:
    """A channel or key name as Redis has it: a str in ``client``'s encoding, as its commands send it."""
    if isinstance(name, bytes):
        return name
    return client.get_encoder().encode(name)  # type: ignore[no-any-return,no-untyped-call]


def error_code(message: object) -> str:
    """The code of an error reply (its first word: ``OOM``, ``NOPERM``, ...), which carries no value the
    command sent."""
    return str(message).split(" ", 1)[0]


def error_reply(message: str) -> exceptions.RedisError:
    """The exception redis-py would raise for the error reply ``message`` (never raised here: returned)."""
    return _ERRORS.get(error_code(message), exceptions.ResponseError)(message)


class Wire:
    """One connection made like ``client``'s, opened on first use and after :meth:`close`.

    Not thread-safe: its owner (a lane, the one waiting call, the listener) serializes its use. It counts the
    replies it still owes, so that a use interrupted half-way (a timeout, an exception) is never followed by
    another one that would read the first one's replies: :meth:`reset_if_stale` closes such a connection.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.last_used = time.monotonic()
        self._connection: AbstractConnection | None = None
        self._sock: socket.socket | None = None
        self._timeout: float | None = None  # the connection's socket timeout
        self._applied: float | None = None  # the timeout the socket has now (reads may set another)
        self._encode: Callable[[Any], Any] | None = None
        self._poller: Any = None  # watches the socket, for reset_if_stale
        self._pending: Callable[[], int] | None = None  # an SSL socket's decrypted bytes not yet handed out
        self._reader = hiredis.Reader(notEnoughData=_INCOMPLETE)
        self._buffer = bytearray(_BUFFER)
        self._owed = 0

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def send(self, commands: Sequence[Command]) -> None:
        """Write ``commands`` (tuples, as ``hiredis.pack_command`` wants them) in one go, connecting first if
        need be."""
        sock = self._sock if self._sock is not None else self._connect()
        self.last_used = time.monotonic()
        encode = self._encode
        if encode is None:
            data = b"".join(map(hiredis.pack_command, commands))
        else:
            data = b"".join([hiredis.pack_command(tuple(map(encode, command))) for command in commands])
        if self._applied != self._timeout:
            sock.settimeout(self._timeout)
            self._applied = self._timeout
        self._owed += len(commands)
        try:
            sock.sendall(data)
        except OSError as exc:
            self.close()
            raise redis.ConnectionError(f"writing to Redis failed: {type(exc).__name__}") from exc

    def reply(self) -> Any:
        """The reply to the next command sent; an error reply is returned as the :class:`redis.RedisError`
        redis-py would raise. RESP3 pushes (notifications no command asked for) are skipped.

        :raises redis.TimeoutError: nothing came within the socket timeout (see :meth:`receive`).
        :raises redis.ConnectionError: the connection is lost, or what came is not RESP (it is closed).
        """
        reply = self.receive()
        while isinstance(reply, hiredis.PushNotification):
            reply = self.receive()
        return reply

    def receive(self, timeout: float | None = None) -> Any:
        """What comes next: a reply as :meth:`reply` returns it, or a RESP3 push.

        :param timeout: seconds to wait for it; by default the connection's socket timeout.
        :raises redis.TimeoutError: nothing came in time. The connection stays usable: what was read so far
            is kept for the next call.
        :raises redis.ConnectionError: the connection is lost, or what came is not RESP (it is closed).
        """
        try:
            reply = self._reader.gets()
            if reply is _INCOMPLETE:
                reply = self._fill(self._timeout if timeout is None else timeout)
        except TimeoutError as exc:
            raise redis.TimeoutError("no reply from Redis in time") from exc
        except (OSError, hiredis.ProtocolError) as exc:
            self.close()
            raise redis.ConnectionError(f"reading from Redis failed: {type(exc).__name__}") from exc
        if isinstance(reply, hiredis.PushNotification):
            return reply
        if self._owed:
            self._owed -= 1
        if isinstance(reply, hiredis.ReplyError):
            return error_reply(str(reply))
        return reply

    def _fill(self, timeout: float | None) -> Any:
        """Read from the socket until a whole reply has come; that reply."""
        sock = self._sock
        if sock is None:
            raise ConnectionResetError("not connected to Redis")
        if self._applied != timeout:
            sock.settimeout(timeout)
            self._applied = timeout
        reader, buffer = self._reader, self._buffer
        while True:
            count = sock.recv_into(buffer)
            if not count:
                raise ConnectionResetError("Redis closed the connection")
            reader.feed(buffer, 0, count)  # type: ignore[arg-type]  # any buffer will do
            reply = reader.gets()
            if reply is not _INCOMPLETE:
                return reply

    def round_trip(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` and read their replies, in order (error replies among them, not raised).

        Anything else that goes wrong, an interruption half-way included, closes the connection: its replies
        would no longer match the commands.
        """
        try:
            self.send(commands)
            return [self.reply() for _ in commands]
        except BaseException:
            self.close()
            raise

    def reset_if_stale(self) -> None:
        """Close the connection unless it is idle and in step: no reply still owed or half-read (a use that
        was interrupted), and nothing waiting that we did not ask for (a connection the server closed while it
        was idle, by a restart, CLIENT KILL or its idle timeout, reads as ready, and writing to it would fail)."""
        sock = self._sock
        if sock is None:
            return
        if self._owed or self._reader.has_data() or self._readable(sock):
            self.close()

    def _readable(self, sock: socket.socket) -> bool:
        """Whether something can be read from ``sock`` right now, without reading it."""
        if self._pending is not None and self._pending():
            return True
        try:
            if self._poller is not None:
                return bool(self._poller.poll(0))
            return bool(select.select([sock], [], [], 0)[0])
        except (OSError, ValueError):
            return True  # a socket closed under us

    def close(self) -> None:
        connection, self._connection, self._sock = self._connection, None, None
        self._poller = self._pending = None
        self._reader = hiredis.Reader(notEnoughData=_INCOMPLETE)
        self._owed = 0
        if connection is not None:
            connection.disconnect()  # type: ignore[no-untyped-call]

    def _connect(self) -> socket.socket:
        pool = self.client.connection_pool
        connection = pool.connection_class(**pool.connection_kwargs)
        connection.connect()  # the handshake: TLS, credentials, protocol, database, client name
        sock: socket.socket | None = connection._sock  # from here on, this module speaks on the socket
        if sock is None:
            raise redis.ConnectionError("redis-py connected without a socket")
        self._connection, self._sock = connection, sock
        self._timeout = self._applied = sock.gettimeout()
        self._pending = getattr(sock, "pending", None)
        if _poll is not None:  # select.select cannot watch descriptors of 1024 and above
            self._poller = _poll()
            self._poller.register(sock, select.POLLIN)
        encoder = connection.encoder
        utf8 = encoder.encoding.replace("_", "-").lower() in ("utf-8", "utf8")
        self._encode = None if utf8 else encoder.encode  # hiredis writes str as UTF-8
        self.last_used = time.monotonic()
        return sock


def _system_poll() -> Callable[[], Any] | None:
    """The system's poll, also where gevent has patched select: a look that does not wait needs no trip through
    gevent's hub, which costs more than ten times as much. None where there is no poll (Windows)."""
    monkey = sys.modules.get("gevent.monkey")  # imported by whoever patched; never imported here
    if monkey is not None and monkey.is_module_patched("select"):
        return monkey.get_original("select", "poll")  # type: ignore[no-any-return]
    return getattr(select, "poll", None)


_poll = _system_poll()
