"""The envelope every broker message travels in: one JSON object (PROTOCOL.md is its specification)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

import orjson

from flask_multi_redis.errors import InvalidMessage, MessageTooLarge

from .signing import Signer

__all__ = [
    "KINDS",
    "MAX_CHANNEL",
    "MAX_ID",
    "VERSION",
    "Envelope",
    "Kind",
    "Sender",
    "deadline_after",
    "is_name",
    "now_ms",
    "pack",
    "unpack",
]

#: The envelope version this code writes; it reads envelopes of the same major version.
VERSION = 1

Kind = Literal["request", "reply", "error", "command"]
KINDS: frozenset[str] = frozenset(("request", "reply", "error", "command"))

#: The longest correlation id, channel name and reply channel an envelope may carry, in characters.
MAX_ID = 128
MAX_CHANNEL = 256
MAX_REPLY_TO = 512
#: Deadlines at or above this (2^53 ms: the integers every JSON reader keeps exact) are refused.
MAX_DEADLINE = 1 << 53


def is_name(value: object, limit: int) -> TypeGuard[str]:
    """Whether ``value`` is a string of 1 to ``limit`` printable characters: no newline, tab, escape or other
    control character, so that it is safe in a log line, a key name and a terminal."""
    return isinstance(value, str) and 0 < len(value) <= limit and value.isprintable()


@dataclass(frozen=True, slots=True)
class Sender:
    """Who sent a message: a process, named by host, pid, role and a random id that is new in every process."""

    id: str
    host: str
    pid: int
    role: str

    def __str__(self) -> str:
        return f"{self.role}@{self.host}:{self.pid}"

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "host": self.host, "pid": self.pid, "role": self.role}

    @classmethod
    def from_json(cls, value: object) -> Sender | None:
        """A sender from its JSON form; None unless it has an ``id`` (at most 128 printable characters), a
        ``host`` (255) and a ``role`` (64), and a ``pid`` that is an integer from 0 to 2^31 - 1."""
        if not isinstance(value, dict):
            return None
        ident, host, pid, role = value.get("id"), value.get("host"), value.get("pid"), value.get("role")
        if not (is_name(ident, MAX_ID) and is_name(host, 255) and is_name(role, 64)):
            return None
        if not isinstance(pid, int) or isinstance(pid, bool) or not 0 <= pid < 1 << 31:
            return None
        return cls(id=ident, host=host, pid=pid, role=role)


_last_sender: tuple[Sender, bytes] | None = None


def _sender_json(sender: Sender) -> bytes:
    """A sender as the JSON its envelopes carry, kept for the last one asked: a process sends every message
    with the same sender."""
    global _last_sender
    last = _last_sender
    if last is not None and last[0] is sender:
        return last[1]
    data = orjson.dumps(sender.as_json())
    _last_sender = (sender, data)
    return data


class Envelope:
    """A received message: its kind, correlation id, logical channel, reply address, deadline and body.

    Treat it as read-only. The sender and the headers are read from the message when first asked for: most
    messages never need them, and every message received builds an envelope."""

    __slots__ = ("_headers", "_sender", "body", "channel", "deadline", "id", "kind", "reply_to")

    def __init__(
        self,
        kind: Kind,
        id: str,
        channel: str,
        body: Any,
        reply_to: str | None = None,
        deadline: int | None = None,
        sender: object = None,
        headers: dict[Any, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.id = id
        self.channel = channel
        self.body = body
        self.reply_to = reply_to
        self.deadline = deadline  # unix time in milliseconds
        self._sender = sender  # a Sender, or its JSON as received until parsed
        self._headers = headers

    def __repr__(self) -> str:
        return f"Envelope(kind={self.kind!r}, id={self.id!r}, channel={self.channel!r})"

    @property
    def sender(self) -> Sender | None:
        """The sending process; None when the message names none, or not in the expected form."""
        sender = self._sender
        if sender is None or isinstance(sender, Sender):
            return sender
        self._sender = sender = Sender.from_json(sender)
        return sender

    @property
    def headers(self) -> dict[str, str]:
        """Free metadata (PROTOCOL.md); values that are not strings are converted."""
        headers = self._headers
        if not headers:
            return {}
        converted = {key: _as_text(value) for key, value in headers.items()}
        return {key: value for key, value in converted.items() if value is not None}

    def expired(self, now: int | None = None) -> bool:
        return self.deadline is not None and (now_ms() if now is None else now) >= self.deadline


def _as_text(value: object) -> str | None:
    """A header value as text: strings as they are, other scalars by ``str()``, arrays and objects as their JSON
    (None when that fails: nested past orjson's 255 levels, where ``str()`` could exhaust Python's stack)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, (list, dict)):
        return str(value)
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return None


def _shown(value: object) -> str:
    """A short, safe word for a field's bad value in an error: its start when it is a string or a number, else
    its JSON type (``str()`` of a deeply nested array would raise RecursionError)."""
    if isinstance(value, str):
        return repr(value[:20])
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)[:20]
    return f"a JSON {'array' if isinstance(value, list) else 'object'}"


def now_ms() -> int:
    """Unix time in milliseconds, the unit of deadlines and registry scores."""
    return int(time.time() * 1000)


def deadline_after(seconds: float) -> int:
    """The unix-millisecond deadline ``seconds`` from now."""
    return int((time.time() + seconds) * 1000)


def pack(
    kind: Kind,
    id: str,
    channel: str,
    body_json: bytes,
    *,
    reply_to: str | None = None,
    deadline: int | None = None,
    sender: Sender | None = None,
    headers: dict[str, str] | None = None,
    max_size: int,
    signer: Signer | None = None,
) -> bytes:
    """Serialize an envelope around an already serialized JSON body, signed when there is a ``signer``; refuse
    one larger than ``max_size``."""
    head: dict[str, Any] = {"v": VERSION, "kind": kind, "id": id, "channel": channel}
    if reply_to is not None:
        head["reply_to"] = reply_to
    if deadline is not None:
        head["deadline"] = deadline
    parts = [orjson.dumps(head)[:-1]]
    if sender is not None:
        parts += (b',"sender":', _sender_json(sender))
    if headers:
        parts += (b',"headers":', orjson.dumps(headers))
    parts += (b',"body":', body_json, b"}")
    data = b"".join(parts)
    if signer is not None:
        data = signer.sign(data)
    if len(data) > max_size:
        raise MessageTooLarge(f"a {len(data)}-byte {kind} on {channel!r} exceeds max_message_size={max_size}")
    return data


def unpack(data: bytes, max_size: int, signer: Signer | None = None) -> Envelope:
    """Parse and check a received envelope, whose signature a ``signer`` checks first; :class:`InvalidMessage`
    says what is wrong without quoting it."""
    if len(data) > max_size:
        raise MessageTooLarge(f"a {len(data)}-byte message exceeds max_message_size={max_size}")
    if signer is not None:
        data = signer.verify(data)
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage(f"a {len(data)}-byte message is not JSON") from exc
    if not isinstance(raw, dict):
        raise InvalidMessage("the message is not a JSON object")
    if raw.get("v") != VERSION:
        raise InvalidMessage(f"unsupported envelope version {_shown(raw.get('v'))} (this side speaks {VERSION})")
    kind, ident, channel = raw.get("kind"), raw.get("id"), raw.get("channel")
    if not isinstance(kind, str) or kind not in KINDS:
        raise InvalidMessage(f"unknown kind {_shown(kind)}")
    if not is_name(ident, MAX_ID):
        raise InvalidMessage(f"the id is not a string of 1 to {MAX_ID} printable characters")
    if not is_name(channel, MAX_CHANNEL):
        raise InvalidMessage(f"the channel is not a string of 1 to {MAX_CHANNEL} printable characters")
    reply_to, deadline, headers = raw.get("reply_to"), raw.get("deadline"), raw.get("headers")
    if reply_to is not None and reply_to != "" and not is_name(reply_to, MAX_REPLY_TO):
        raise InvalidMessage(f"reply_to is not a string of at most {MAX_REPLY_TO} printable characters")
    if deadline is not None and (
        not isinstance(deadline, int) or isinstance(deadline, bool) or not 0 <= deadline < MAX_DEADLINE
    ):
        raise InvalidMessage("deadline is not an integer from 0 to 2^53 - 1 (unix milliseconds)")
    if headers and not isinstance(headers, dict):
        raise InvalidMessage("headers is not an object")
    checked: Kind = kind  # type: ignore[assignment]  # one of KINDS (a cast() would cost a call per message)
    return Envelope(checked, ident, channel, raw.get("body"), reply_to or None, deadline, raw.get("sender"), headers)
