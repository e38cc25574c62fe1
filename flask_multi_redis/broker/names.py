"""Every Redis key and channel name the broker uses, in one place (PROTOCOL.md documents them).

All of them carry the environment prefix (``PREFIX:...``), so two environments on one server never meet. The
broker's own names live under ``fmr:``, which user channels may not use.
"""

from __future__ import annotations

from flask_multi_redis.session import answer_channel, prefixed

__all__ = [
    "RESERVED",
    "answer_channel",
    "claim_key",
    "command_channel",
    "environment",
    "inbox_channel",
    "process_key",
    "process_pattern",
    "reply_key",
    "request_channel",
    "serves_key",
]

#: The namespace reserved for the broker's own keys and channels.
RESERVED = "fmr:"


def environment(prefix: str) -> str:
    """What every channel and key name of the environment ``prefix`` starts with (``PREFIX:``, or nothing)."""
    return prefixed(prefix, "")


def command_channel(prefix: str, channel: str) -> str:
    """The channel of ``channel``'s commands: every process with a command for it subscribes (as may anyone)."""
    return prefixed(prefix, channel)


def request_channel(prefix: str, channel: str) -> str:
    """The shared request channel of ``channel``: every process with a handler for it subscribes, and the one
    that claims a request serves it. Callers use it when no registered responder takes a request (and foreign
    clients always may)."""
    return prefixed(prefix, f"fmr:req:{channel}")


def inbox_channel(prefix: str, process_id: str) -> str:
    """One process's own channel: replies to its requests, and requests addressed to it alone."""
    return prefixed(prefix, f"fmr:inbox:{process_id}")


def reply_key(prefix: str, request_id: str) -> str:
    """A list that keeps replies its caller could not receive by pub/sub (TTL: the request's deadline)."""
    return prefixed(prefix, f"fmr:reply:{request_id}")


def claim_key(prefix: str, request_id: str) -> str:
    """Taken with SET NX by the one process that serves a request published on a shared channel."""
    return prefixed(prefix, f"fmr:claim:{request_id}")


def process_key(prefix: str, process_id: str) -> str:
    """A live process's heartbeat record (JSON, expires unless renewed)."""
    return prefixed(prefix, f"fmr:process:{process_id}")


def process_pattern(prefix: str) -> str:
    """A SCAN pattern matching every heartbeat record of the environment."""
    return prefixed(prefix, "fmr:process:*")


def serves_key(prefix: str, channel: str) -> str:
    """A sorted set of the processes that handle requests on ``channel``, scored by heartbeat expiry (ms)."""
    return prefixed(prefix, f"fmr:serves:{channel}")
