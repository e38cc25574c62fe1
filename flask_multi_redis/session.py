"""RedisSession: a ``redis.Redis`` that knows its name and channel prefix, with typed publish and reply waiting."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, overload

import redis
from pydantic import BaseModel
from redis.client import PubSub

from .codec import as_bytes, decode, encode
from .errors import DecodeError, EncodeError, NoResponders, ReplyTimeout

__all__ = ["RedisSession", "answer_channel", "confirm", "next_reply", "prefixed", "publish_and_wait"]

M = TypeVar("M", bound=BaseModel)

#: How long ``subscribe`` waits for the server to confirm, unless the client has a socket timeout.
SUBSCRIBE_CONFIRM_TIMEOUT = 5.0


def prefixed(prefix: str, channel: str) -> str:
    """The wire name of ``channel`` in the environment ``prefix`` (``PREFIX:channel``; no prefix, no colon)."""
    return f"{prefix}:{channel}" if prefix else channel


def answer_channel(token: str) -> str:
    """The one-call reply channel of :meth:`RedisSession.publish_and_wait_reply` (the session adds the prefix),
    in the namespace ``fmr:`` that the broker reserves (see :mod:`flask_multi_redis.broker.names`)."""
    return f"fmr:answer:{token}"


class RedisSession(redis.Redis):
    """A ``redis.Redis`` client for one configured database: every Redis command works as usual.

    Pub/sub does not depend on the selected database (a Redis fact): the channel ``prefix`` is what keeps two
    environments on one server apart, so ``publish`` and ``subscribe`` apply it.
    """

    def __init__(self, *args: Any, name: str = "default", prefix: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = name
        self.prefix = prefix

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} db={self.database} prefix={self.prefix!r} {self.connection_pool!r}>"
        )

    def client(self) -> RedisSession:
        """A client bound to one connection of this session's pool, with the same name and prefix."""
        return type(self)(
            connection_pool=self.connection_pool, single_connection_client=True, name=self.name, prefix=self.prefix
        )

    @property
    def database(self) -> int:
        """The database index this session's connections select."""
        return int(self.connection_pool.connection_kwargs.get("db", 0))

    def channel(self, name: str) -> str:
        """The wire name of channel ``name``, prefix applied."""
        return prefixed(self.prefix, name)

    def publish(self, channel: Any, data: Any, **kwargs: Any) -> int:  # type: ignore[override]
        """Publish ``data`` (str, bytes, int, float, dict, list or a pydantic model) on the prefixed channel.

        :returns: the number of clients that received it; 0 means nobody listens.
        """
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        return int(super().publish(self.channel(name), encode(data), **kwargs))

    def subscribe(self, *channels: str, timeout: float | None = None) -> PubSub:
        """A new PubSub subscribed to the prefixed ``channels``, returned once the server has confirmed them
        (within ``timeout`` seconds; by default the socket timeout, or 5 s).

        Each call gets its own PubSub (and connection), so two callers never read each other's messages.

        :raises redis.TimeoutError: the server did not confirm in time.
        """
        pubsub = self.pubsub()
        if not channels:
            return pubsub
        names = {self.channel(name) for name in channels}
        pubsub.subscribe(*names)
        if timeout is None:
            timeout = self.connection_pool.connection_kwargs.get("socket_timeout") or SUBSCRIBE_CONFIRM_TIMEOUT
        confirm(pubsub, len(names), timeout, pubsub.get_message, "subscribe")
        return pubsub

    @overload
    def wait_for_reply(
        self,
        pubsub: PubSub,
        return_type: type[M],
        timeout: float = ...,
        encoding: str = ...,
        allow_error: bool = ...,
    ) -> M: ...
    @overload
    def wait_for_reply(
        self,
        pubsub: PubSub,
        return_type: type[Any] = ...,
        timeout: float = ...,
        encoding: str = ...,
        allow_error: bool = ...,
    ) -> Any: ...
    def wait_for_reply(
        self,
        pubsub: PubSub,
        return_type: type[Any] = str,
        timeout: float = 30,
        encoding: str = "utf-8",
        allow_error: bool = False,
    ) -> Any:
        """The next data message on ``pubsub``, decoded as ``return_type``.

        Only messages on channels or patterns this very PubSub is subscribed to count; subscribe confirmations
        and pings are skipped. ``timeout`` is one overall deadline, however many messages are skipped.

        :param return_type: str, bytes, int, float, dict, list or a pydantic model class.
        :param allow_error: return None instead of raising on a timeout or an undecodable message.
        :raises ReplyTimeout: nothing arrived in time (a ``TimeoutError``).
        :raises DecodeError: the message does not decode as ``return_type``.
        """
        return next_reply(pubsub, pubsub.get_message, return_type, timeout, encoding, allow_error)

    def publish_and_wait_reply(
        self,
        channel: str,
        data: dict[str, Any] | BaseModel,
        return_type: type[Any] = str,
        timeout: float = 30,
        encoding: str = "utf-8",
        reply_field: str = "reply_to",
    ) -> Any:
        """Publish ``data`` with a fresh reply channel in ``data[reply_field]`` and return the answer sent there.

        For services that answer by publishing to the channel named in the message. The reply channel is
        subscribed (and confirmed) before the publish, used for this call only, and closed afterwards.

        :returns: the reply decoded as ``return_type`` (as :meth:`wait_for_reply`).
        :raises NoResponders: nobody listens on ``channel`` (at once, not after the timeout).
        :raises ReplyTimeout: no reply within ``timeout`` seconds.
        """
        return publish_and_wait(self, channel, data, return_type, timeout, encoding, reply_field)

    def _publish_counted(self, channel: str, data: bytes) -> int:
        """PUBLISH, counting only the channel's own subscribers: PUBLISH also counts pattern subscribers
        (``PSUBSCRIBE *``: a monitor), which never answer. PUBSUB NUMSUB in the same transaction counts them at
        the same moment."""
        pipe = self.pipeline(transaction=True)
        pipe.pubsub_numsub(channel)
        pipe.execute_command("PUBLISH", channel, data)  # type: ignore[no-untyped-call]
        numsub, _ = pipe.execute()  # [(channel, count)]
        return int(numsub[0][1]) if numsub else 0


#: Reads the next message of a PubSub within ``timeout`` seconds (``get_message``, ``get_sharded_message``).
Read = Callable[..., dict[str, Any] | None]

#: The kinds of pub/sub message that carry data; and the attribute of a PubSub where :func:`confirm` keeps
#: those it read while it waited for the confirmations.
DATA = frozenset({"message", "pmessage", "smessage"})
EARLY = "_flask_multi_redis_early"


def confirm(pubsub: PubSub, pending: int, timeout: float, read: Read, kind: str) -> None:
    """Wait until the server has confirmed ``pending`` subscriptions (messages of type ``kind``) on ``pubsub``.

    :raises redis.TimeoutError: not within ``timeout`` seconds (``pubsub`` is closed).
    """
    deadline = time.monotonic() + timeout
    early: list[dict[str, Any]] = []
    while pending:
        remaining = deadline - time.monotonic()
        message = read(timeout=remaining) if remaining > 0 else None
        if message is None and remaining <= 0:
            pubsub.close()
            raise redis.TimeoutError(f"the server did not confirm {kind.upper()} within {timeout} s")
        if message is not None and message["type"] == kind:
            pending -= 1
        elif message is not None and message["type"] in DATA:  # a channel confirmed before the others (a
            early.append(message)  # cluster's shards confirm one by one): delivered, kept for the next read
    if early:
        setattr(pubsub, EARLY, early)


def next_reply(
    pubsub: PubSub, read: Read, return_type: type[Any], timeout: float, encoding: str, allow_error: bool
) -> Any:
    """What :meth:`RedisSession.wait_for_reply` returns, reading with ``read``."""
    deadline = time.monotonic() + timeout
    early: list[dict[str, Any]] = getattr(pubsub, EARLY, [])
    while True:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            message = early.pop(0) if early else read(timeout=remaining)  # polls once at least, even with 0
        except UnicodeDecodeError:  # a text session's parser, on data that is not text in its encoding
            if allow_error:
                return None
            raise DecodeError("a message that is not text in the session's encoding") from None
        if message is None or not _is_own_data(pubsub, message):
            if time.monotonic() < deadline:
                continue
            if allow_error:
                return None
            raise ReplyTimeout(f"no reply within {timeout} s")
        try:
            return decode(message["data"], return_type, encoding)
        except DecodeError:
            if allow_error:
                return None
            raise


class _Asking(Protocol):
    """What :func:`publish_and_wait` needs of a session (a RedisSession, a ClusterSession)."""

    def channel(self, name: str) -> str: ...
    def subscribe(self, *channels: str, timeout: float | None = None) -> Any: ...
    def wait_for_reply(self, pubsub: Any, return_type: type[Any], timeout: float, encoding: str) -> Any: ...
    def _publish_counted(self, channel: str, data: bytes) -> int: ...


def publish_and_wait(
    session: _Asking,
    channel: str,
    data: dict[str, Any] | BaseModel,
    return_type: type[Any],
    timeout: float,
    encoding: str,
    reply_field: str,
) -> Any:
    """What ``publish_and_wait_reply`` does, for either kind of session: a fresh reply channel subscribed (and
    confirmed) first, named in ``data[reply_field]``, the publish counted, the answer waited for."""
    payload = request_payload(data)
    name = answer_channel(secrets.token_urlsafe(16))
    deadline = time.monotonic() + timeout
    try:
        pubsub = session.subscribe(name, timeout=timeout)  # one deadline for the whole call
    except redis.TimeoutError:
        raise ReplyTimeout(f"no reply within {timeout} s: the server did not confirm the reply channel") from None
    try:
        payload[reply_field] = session.channel(name)
        if not session._publish_counted(session.channel(channel), encode(payload)):
            raise NoResponders(f"nobody listens on channel {session.channel(channel)!r}")
        return session.wait_for_reply(pubsub, return_type, max(0.0, deadline - time.monotonic()), encoding)
    finally:
        pubsub.close()


def request_payload(data: dict[str, Any] | BaseModel) -> dict[str, Any]:
    """The JSON object a ``publish_and_wait_reply`` sends, before its reply field is added."""
    if isinstance(data, BaseModel):
        return data.model_dump(mode="json")
    if isinstance(data, dict):
        return dict(data)
    raise EncodeError(f"publish_and_wait_reply sends a dict or a pydantic model, not {type(data).__name__}")


def _is_own_data(pubsub: PubSub, message: dict[str, Any]) -> bool:
    """A data message on a channel (or pattern, or shard channel) that ``pubsub`` is subscribed to and not
    leaving."""
    kind = message["type"]
    if kind == "message":
        live, leaving, name = pubsub.channels, pubsub.pending_unsubscribe_channels, message["channel"]
    elif kind == "smessage":
        live, leaving, name = pubsub.shard_channels, pubsub.pending_unsubscribe_shard_channels, message["channel"]
    elif kind == "pmessage":
        live, leaving, name = pubsub.patterns, pubsub.pending_unsubscribe_patterns, message["pattern"]
    else:
        return False
    wanted = as_bytes(name)
    return any(as_bytes(n) == wanted for n in live) and not any(as_bytes(n) == wanted for n in leaving)
