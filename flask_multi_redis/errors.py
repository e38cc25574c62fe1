"""One exception tree for the whole package, rooted at :class:`FlaskRedisError`.

Messages name what is wrong and what to do about it; they never carry a password or a URL's credentials.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar


class FlaskRedisError(Exception):
    """Root of every error raised by flask-multi-redis."""


class ConfigurationError(FlaskRedisError, ValueError):
    """The Redis configuration is missing, malformed or contradictory.

    :param key: the configuration key at fault, as the user wrote it (``REDIS.PORT``, ``REDIS_URL``).
    :param problem: what is wrong with its value.
    :param expected: the form that would be accepted.
    """

    def __init__(self, key: str, problem: str, expected: str | None = None) -> None:
        self.key = key
        self.problem = problem
        self.expected = expected
        message = f"{key}: {problem}"
        if expected:
            message += f" (expected {expected})"
        super().__init__(message)


class NotInitializedError(FlaskRedisError, RuntimeError):
    """The extension is used with an app (or without one) it was never initialised for."""


class UnknownDatabaseError(FlaskRedisError, LookupError):
    """``getRedis`` was asked for a database that is not configured.

    :param wanted: the name or index asked for.
    :param known: the configured database names.
    :param problem: why it does not resolve, when not simply "unknown".
    """

    def __init__(self, wanted: object, known: Iterable[str], problem: str = "is not configured") -> None:
        self.wanted = wanted
        self.known = tuple(known)
        listed = ", ".join(repr(name) for name in self.known) or "none"
        super().__init__(f"database {wanted!r} {problem}; known databases: {listed}")


class CodecError(FlaskRedisError, ValueError):
    """A value could not be encoded for, or decoded from, the wire."""


class EncodeError(CodecError, TypeError):
    """A value of a type the codec does not know how to send."""


class DecodeError(CodecError):
    """Received bytes that do not decode as the requested type."""


class ReplyTimeout(FlaskRedisError, TimeoutError):
    """No reply arrived before the deadline of ``wait_for_reply``."""


class BrokerError(FlaskRedisError):
    """Root of the errors raised by :mod:`flask_multi_redis.broker`."""


class NoResponders(BrokerError, LookupError):
    """Nobody serves the channel: raised as soon as a publish reaches no process, not after the timeout."""


class RequestTimeout(BrokerError, TimeoutError):
    """A request (or a gathered broadcast) was not answered before its deadline."""


def printable(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with each character that is not printable (a newline, a tab, a
    terminal escape) written as its Python escape: safe in one log line and on a terminal."""
    cut = text[:limit]
    if not cut.isprintable():
        cut = "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)
    return cut if len(text) <= limit else cut + "..."


class RemoteError(BrokerError):
    """The remote handler failed: ``remote_type`` and ``remote_message`` say how.

    Three kinds of failure have classes of their own, below this one: :class:`Overloaded`, :class:`ShuttingDown`
    and :class:`RemoteInvalidMessage`; :func:`remote_error` picks the class for a ``remote_type``.
    """

    #: The ``type`` an error answer carries on the wire for this class (PROTOCOL.md); "" for any other type.
    REMOTE_TYPE: ClassVar[str] = ""

    def __init__(self, remote_type: str, remote_message: str, sender: str | None = None) -> None:
        self.remote_type = remote_type
        self.remote_message = remote_message
        self.sender = sender
        where = f" in {printable(sender, 400)}" if sender else ""
        super().__init__(f"{printable(remote_type, 100)}{where}: {printable(remote_message, 2000)}")


class InvalidMessage(BrokerError, ValueError):
    """A payload does not fit its channel's declared type, or a received envelope is malformed."""


class MessageTooLarge(InvalidMessage):
    """A message exceeds the broker's ``max_message_size``."""


class BrokerUnavailable(BrokerError, ConnectionError):
    """Redis could not be reached, or refused a command (its error code is in the message: ``OOM``,
    ``NOPERM``, ...), while sending a message or waiting for its reply. When it happens during the wait, the
    request was delivered and its handler may run."""


class Overloaded(RemoteError):
    """The process that received the request had no room for it (its handler queue was full): not started."""

    REMOTE_TYPE = "Overloaded"


class ShuttingDown(RemoteError):
    """The process that received the request is stopping and did not start it. The broker sends such a request
    to another process, so a caller sees this only when no other one took it."""

    REMOTE_TYPE = "ShuttingDown"


class RemoteInvalidMessage(RemoteError, InvalidMessage):
    """The remote side rejected the request, or its handler's reply, as not fitting the types declared there."""

    REMOTE_TYPE = "InvalidMessage"


class RemoteBrokerUnavailable(RemoteError, BrokerUnavailable):
    """The remote process could not use Redis for the request (it could not claim it: ``OOM``, say): not
    started. Also a :class:`BrokerUnavailable`, as when this process cannot use Redis."""

    REMOTE_TYPE = "BrokerUnavailable"


_REMOTE_CLASSES: dict[str, type[RemoteError]] = {
    cls.REMOTE_TYPE: cls for cls in (Overloaded, ShuttingDown, RemoteInvalidMessage, RemoteBrokerUnavailable)
}


def remote_error(remote_type: str, remote_message: str, sender: str | None = None) -> RemoteError:
    """The :class:`RemoteError` for an error answer of ``remote_type``: one of its subclasses where one fits."""
    return _REMOTE_CLASSES.get(remote_type, RemoteError)(remote_type, remote_message, sender)


class LockError(FlaskRedisError):
    """A lock was used the wrong way: released or extended by an instance that does not hold it, or acquired
    twice by one."""


class LockTimeout(LockError, TimeoutError):
    """``with lock:`` did not get the lock within its ``timeout``."""


class CollectionValueError(FlaskRedisError, ValueError):
    """A value that is not of its collection's type (naming the key and the index or field): nothing was written;
    or a stored value that does not decode as it."""
