"""Connections spoken to directly: hiredis packs the commands and parses the replies, on a socket redis-py made.

A command through a redis-py client pays for the pool checkout (with its readiness check), retries,
instrumentation and reply callbacks: on a local server about as much again as the round trip itself. The broker's
hot connections are made by redis-py (:func:`.connection.hand_over`) and written and read here instead. What
comes back is what a redis-py client would make of it: an error reply becomes the exception class redis-py's own
parser picks, with its message; a server that closed the connection, a socket error and a read that timed out
raise redis-py's ``ConnectionError`` and ``TimeoutError`` with redis-py's words; any failure closes the
connection, as redis-py does. Nothing is retried here: the caller knows what is safe to repeat.
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
from redis.exceptions import AskError, InvalidResponse, ReadOnlyError

from .connection import HandedOver, hand_over
from .follow import FollowedPrimary

__all__ = ["Command", "DirectConnection", "SubscriberConnection"]

#: A command: its name and arguments, as a tuple (what ``hiredis.pack_command`` takes).
Command = tuple[Any, ...]

_BUFFER = 65536
_STEP = 0.01  # how much shorter than asked a socket's timeout may be (see _Connection._apply)
_INCOMPLETE = object()  # what the reader returns while a reply is not complete (a RESP3 false is False)
_CLOSED = "Connection closed by server."  # redis-py's words
_Push = hiredis.PushNotification
_ConnectionError = redis.ConnectionError


class _Connection:
    """A socket that redis-py connected, opened on first use and after :meth:`close`, with a hiredis reader.

    Not thread-safe: its owner serializes its use.
    """

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.last_used = time.monotonic()
        self._handed: HandedOver | None = None
        self._sock: socket.socket | None = None
        self._timeout: float | None = None  # the connection's socket timeout
        self._applied: float | None = None  # the timeout the socket has now (a read may set another)
        self._encode: Callable[[Any], Any] | None = None
        self._reader: Any = None
        self._poller: Any = None  # watches the socket, for _in_step
        self._pending: Callable[[], int] | None = None  # an SSL socket's decrypted bytes not yet handed out
        self.primary: FollowedPrimary | None = None  # the primary it follows (behind sentinels, a cluster slot's)
        self._buffer = bytearray(_BUFFER)

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        handed, self._handed, self._sock = self._handed, None, None
        self._reader = self._poller = self._pending = self.primary = None
        if handed is not None:
            handed.connection.disconnect()  # type: ignore[no-untyped-call]

    def _write(self, commands: Sequence[Command], timeout: float | None = None, connect: bool = True) -> float | None:
        """Write ``commands`` in one go, connecting first if need be (within ``timeout`` seconds, if given) and
        ``connect``; the timeout the socket has now (``timeout``, at most the socket timeout). Any failure, an
        interruption too, closes the connection: what was written of it is unknown."""
        try:
            sock = self._sock
            if sock is None:
                if not connect:
                    raise redis.ConnectionError(_CLOSED)
                sock = self._connect(timeout)
            began = self.last_used = time.monotonic()
            encode = self._encode
            if encode is None:
                data = b"".join(map(hiredis.pack_command, commands))
            else:
                data = b"".join([hiredis.pack_command(tuple(map(encode, command))) for command in commands])
            wait = self._bounded(timeout)
            self._apply(sock, wait)
            self._send(sock, data, wait, began)
        except BaseException:
            self.close()
            raise
        return wait

    def _send(self, sock: socket.socket, data: bytes, wait: float | None, began: float) -> None:
        """Send ``data`` within ``wait`` seconds from ``began``; a failure raises redis-py's error for it."""
        try:
            if len(data) > _BUFFER:
                sock.sendall(data)
            else:  # one send takes it whole, nearly always: gevent's sendall asks for the buffer's size first
                sent = sock.send(data)
                if sent < len(data):  # the rest within what is left of the one timeout
                    if wait is not None:
                        self._apply(sock, max(0.001, wait - (time.monotonic() - began)))
                    sock.sendall(memoryview(data)[sent:])
        except TimeoutError:
            raise redis.TimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            errno, message = ("UNKNOWN", exc.args[0]) if len(exc.args) == 1 else exc.args[:2]
            raise redis.ConnectionError(f"Error {errno} while writing to socket. {message}.") from exc

    def _read(self, timeout: float | None, whole: bool = True) -> Any:
        """What comes next: a reply, an error reply as its exception, or a RESP3 push. A failed read closes the
        connection, but for a timeout: the caller decides (a subscriber waits again, what was read is kept).

        :raises TimeoutError: nothing came within ``timeout`` seconds (the built-in one).
        :raises redis.ConnectionError: the server closed the connection, or the socket failed.
        :raises InvalidResponse: what came is not RESP.
        """
        reader = self._reader
        if reader is None:
            raise redis.ConnectionError(_CLOSED)
        reply = reader.gets()
        return reply if reply is not _INCOMPLETE else self._fill(timeout, whole)

    def _fill(self, timeout: float | None, whole: bool = True) -> Any:
        """Read from the socket until the reader has a whole reply (see :meth:`_read`); that reply.

        :param whole: ``timeout`` bounds the whole reply (a call's deadline); otherwise each wait for more of
            it (a subscriber, for which a large message still arriving is traffic, not silence)."""
        reader, sock = self._reader, self._sock
        if reader is None or sock is None:  # closed meanwhile, by the owner's stop
            raise redis.ConnectionError(_CLOSED)
        self._apply(sock, timeout)
        buffer = self._buffer
        until = None if timeout is None or not whole else time.monotonic() + timeout
        try:
            while True:
                count = sock.recv_into(buffer)
                if not count:
                    raise redis.ConnectionError(_CLOSED)
                reader.feed(buffer, 0, count)
                reply = reader.gets()
                if reply is not _INCOMPLETE:
                    return reply
                if not whole:
                    self.heard = time.monotonic()
                elif until is not None:  # a reply in several pieces: all of them within the one timeout
                    self._apply(sock, max(0.001, until - time.monotonic()))
        except TimeoutError:
            raise
        except OSError as exc:
            where = self._handed.where if self._handed is not None else "Redis"
            self.close()
            raise redis.ConnectionError(f"Error while reading from {where} : {exc.args}") from exc
        except BaseException:  # InvalidResponse, or an interruption: nothing read after it would be in step
            self.close()
            raise

    def _apply(self, sock: socket.socket, timeout: float | None) -> None:
        """Give the socket ``timeout``, or, when it is longer than _STEP, leave it the one it has when that is at
        most _STEP shorter: each change is a system call, and the calls of a process mostly ask for about the
        same. No read waits longer than asked."""
        applied = self._applied
        if applied == timeout:
            return
        if timeout is not None and timeout > _STEP:
            if applied is not None and timeout - _STEP <= applied <= timeout:
                return
            timeout -= _STEP / 2  # the middle of what calls asking about the same will take
        sock.settimeout(timeout)
        self._applied = timeout

    def _bounded(self, timeout: float | None) -> float | None:
        """The timeout of a read or write: ``timeout``, but never longer than the connection's socket timeout."""
        if timeout is None or self._timeout is None:
            return self._timeout if timeout is None else timeout
        return min(timeout, self._timeout)

    def _in_step(self) -> bool:
        """Whether nothing is waiting to be read that nobody asked for: a connection the server closed while it
        was idle (a restart, CLIENT KILL, its idle timeout) reads as ready, and writing to it would fail."""
        if self._sock is None:
            return True
        return not self._moved() and not self.readable()

    def _moved(self) -> bool:
        """Whether the primary it follows is known to have moved (a failover): it must not be used again."""
        return self.primary is not None and self.primary.moved()

    def readable(self) -> bool:
        """Whether something can be read at once: a reply, or the end of a connection the server closed."""
        sock, reader = self._sock, self._reader
        if sock is None or reader is None:  # closed, by the owner's stop maybe: nothing to read
            return False
        if reader.has_data():
            return True
        pending = self._pending
        if pending is not None and pending():
            return True
        try:
            poller = self._poller
            if poller is not None:
                return bool(poller.poll(0))
            return bool(select.select([sock], [], [], 0)[0])  # no poll (Windows): descriptors below 1024 only
        except (OSError, ValueError):
            return True  # a socket closed under us: reading says so

    def _connect(self, timeout: float | None) -> socket.socket:
        handed = hand_over(self.client, timeout)
        self._handed, self._sock = handed, handed.sock
        self._timeout = self._applied = handed.sock.gettimeout()
        self._encode = handed.encode
        self.primary = handed.primary
        self._pending = getattr(handed.sock, "pending", None)
        if _poll is not None:  # select.select cannot watch descriptors of 1024 and above
            self._poller = _poll()
            self._poller.register(handed.sock, select.POLLIN)
        self._reader = hiredis.Reader(
            notEnoughData=_INCOMPLETE, replyError=handed.parse_error, protocolError=InvalidResponse
        )
        self.last_used = time.monotonic()
        return handed.sock


class DirectConnection(_Connection):
    """Commands and their replies, read in order. It counts the replies it still owes, so that a use interrupted
    half-way (a timeout, an exception) is never followed by one that would read the first one's replies: every
    use begins on a connection in step, reconnecting when need be (but :meth:`send_more`, which goes on with the
    use before it).

    Error replies come back as exceptions among the replies, not raised. One of redis-py's connection errors
    (``LOADING``, ``WRONGPASS``, ``ERR max number of clients reached``) also ends the connection, as it ends a
    redis-py connection; the next use reconnects.
    """

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(client)
        self._owed = 0
        self._broken = False  # an error reply that ends the connection was read

    @property
    def owed(self) -> int:
        """Replies to commands already sent that :meth:`finish` has not read yet."""
        return self._owed

    def round_trip(self, commands: Sequence[Command], timeout: float | None = None) -> list[Any]:
        """Send ``commands`` and read their replies, in order; within ``timeout`` seconds for each read (and for
        connecting, if need be), by default the socket timeout."""
        return self.start(commands, len(commands), timeout)

    def start(self, commands: Sequence[Command], answered: int, timeout: float | None = None) -> list[Any]:
        """Send ``commands`` and read the replies of the first ``answered`` of them (``timeout`` as for
        :meth:`round_trip`); the others stay owed, for :meth:`finish` (a blocking command sent behind quick
        ones, say)."""
        if self._owed or self._broken or not self._in_step():
            self.close()
        began = time.monotonic()
        wait = self._write(commands, timeout)
        self._owed = len(commands)
        if wait is None:
            return [self._next(None) for _ in range(answered)]
        until = began + wait  # one timeout for connecting, if need be, and all the replies
        return [self._next(max(0.001, until - time.monotonic())) for _ in range(answered)]

    def send_more(self, commands: Sequence[Command]) -> bool:
        """Send ``commands`` behind those whose replies are still owed (pipelining), reading nothing: their
        replies are owed too, for :meth:`finish`, after the earlier ones. False, and nothing sent, when nothing
        is owed (the connection closed since, say), an error reply ended the connection, or the primary it
        follows has moved: then a new use (:meth:`start`) begins in step. (Whether the server closed the
        connection meanwhile is known only once the earlier replies are read: see :meth:`readable`.)

        :raises redis.ConnectionError: the write failed, or the connection was closed meanwhile (what was
            written is unknown; the connection is closed).
        :raises redis.TimeoutError: the write did not end within the socket timeout (the same).
        """
        if not self._owed or self._broken or self._moved():
            return False
        self._write(commands, connect=False)  # closed meanwhile (by a stop): not on a new connection
        self._owed += len(commands)
        return True

    def finish(self, timeout: float | None = None) -> Any:
        """The reply to the next owed command, waiting up to ``timeout`` seconds (the socket timeout by default).

        :raises redis.TimeoutError: it did not come in time (the connection is closed).
        """
        if not self._owed:
            raise redis.ConnectionError("no reply is owed on this connection")
        return self._next(self._bounded(timeout))

    def close(self) -> None:
        super().close()
        self._owed = 0
        self._broken = False

    def _next(self, timeout: float | None) -> Any:
        """The next owed reply; any failure closes the connection, whose replies would no longer match."""
        try:
            reader = self._reader
            if reader is None:  # closed meanwhile, by the owner's stop
                raise redis.ConnectionError(_CLOSED)
            reply = reader.gets()  # often buffered already: no read at all
            if reply is _INCOMPLETE:
                reply = self._fill(timeout)
            while isinstance(reply, _Push):  # notifications no command asked for
                reply = self._read(timeout)
        except TimeoutError:
            if self.primary is not None:  # a primary gone silent: learn where it is now, in the background
                self.primary.refresh()
            where = self._handed.where if self._handed is not None else "Redis"
            self.close()
            raise redis.TimeoutError(f"Timeout reading from {where}") from None
        except BaseException:
            self.close()
            raise
        self._owed -= 1
        if isinstance(reply, redis.RedisError):
            return self._error(reply)
        return reply

    def _error(self, reply: redis.RedisError) -> redis.RedisError:
        """An error reply as redis-py's connection would take it: one that ends the connection ends it; a
        primary followed through sentinels that answers ``READONLY`` was demoted, which is a lost connection."""
        if self.primary is not None and isinstance(reply, (ReadOnlyError, AskError)):
            self._broken = True  # a demoted primary (READONLY), or a cluster slot served elsewhere (MOVED, ASK)
            self.primary.refresh()  # learn where it is now, in the background, for the next connection
            if isinstance(reply, ReadOnlyError):
                return redis.ConnectionError("The previous master is now a slave")  # redis-py's words
            return redis.ConnectionError(f"the slot moved: {reply}")
        if isinstance(reply, _ConnectionError):
            self._broken = True
        return reply


class SubscriberConnection(_Connection):
    """A connection in pub/sub mode: the server pushes messages, and the confirmations of SUBSCRIBE, UNSUBSCRIBE
    and PING come among them."""

    #: When part of a message last arrived (monotonic): a large one may take longer than a read's timeout.
    heard = 0.0

    def send(self, commands: Sequence[Command]) -> None:
        """Write ``commands``; what they bring back comes as messages."""
        self._write(commands)

    def next_message(self, timeout: float) -> Any:
        """The next message (a list: RESP2 arrays and RESP3 pushes both read so), or an error reply as its
        exception; None when nothing came within ``timeout`` seconds. The connection then stays open, and what
        was read of a message so far is kept for the next call."""
        try:
            return self._read(timeout, whole=False)
        except TimeoutError:
            return None


def _system_poll() -> Callable[[], Any] | None:
    """The system's poll, also where gevent has patched select: a look that does not wait needs no trip through
    gevent's hub, which costs more than ten times as much. None where there is no poll (Windows)."""
    monkey = sys.modules.get("gevent.monkey")  # imported by whoever patched; never imported here
    if monkey is not None and monkey.is_module_patched("select"):
        return monkey.get_original("select", "poll")  # type: ignore[no-any-return]
    return getattr(select, "poll", None)


_poll = _system_poll()
