"""One process's answer to a gathered broadcast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from flask_multi_redis.errors import BrokerError, InvalidMessage, remote_error

from .channel import Channel
from .envelope import Envelope, Sender, is_name

__all__ = ["Reply", "reply_from"]

Rep = TypeVar("Rep")


@dataclass(frozen=True)
class Reply(Generic[Rep]):
    """One process's answer to a gathered broadcast: its ``value`` when ``ok``, otherwise the ``error``.

    A process that received the broadcast but did not answer in time has ``sender=None`` and a
    :class:`~flask_multi_redis.RequestTimeout` as its error.
    """

    sender: Sender | None
    ok: bool
    value: Rep | None = None
    error: BrokerError | None = None


def reply_from(channel: Channel[Any, Rep], envelope: Envelope) -> Reply[Rep]:
    """The reply an answer envelope on ``channel`` carries: its value, or the error it reports (one that does not
    fit the channel's reply type is an :class:`~flask_multi_redis.InvalidMessage`)."""
    sender = envelope.sender
    if envelope.kind == "error":
        body = envelope.body if isinstance(envelope.body, dict) else {}
        error_type, message = body.get("type"), body.get("message")
        error = remote_error(
            error_type if is_name(error_type, 100) else "Error",
            message if isinstance(message, str) else "",
            str(sender or ""),
        )
        return Reply(sender, False, error=error)
    try:
        return Reply(sender, True, value=channel.load_reply(envelope.body))
    except InvalidMessage as exc:
        return Reply(sender, False, error=exc)
