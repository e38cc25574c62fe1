"""The registry of live processes: each listening process renews a heartbeat record that expires without it,
and each channel's handlers are listed in a sorted set scored by the expiry of their heartbeat.

Callers read it to address one live responder directly; ``flask redis workers`` lists it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import redis

from . import names
from .envelope import Sender, now_ms
from .lane import Lane

__all__ = ["ProcessInfo", "live_processes", "register", "responder_ids", "unregister"]


@dataclass(frozen=True)
class ProcessInfo:
    """A live process as its last heartbeat described it."""

    sender: Sender
    inbox: str
    handlers: tuple[str, ...]
    commands: tuple[str, ...]
    started_at: float
    handled: int
    failed: int

    def as_json(self) -> dict[str, Any]:
        return {
            "sender": self.sender.as_json(),
            "inbox": self.inbox,
            "handlers": list(self.handlers),
            "commands": list(self.commands),
            "started_at": self.started_at,
            "handled": self.handled,
            "failed": self.failed,
        }

    @classmethod
    def from_json(cls, raw: bytes | str) -> ProcessInfo | None:
        """Parse a heartbeat record; None for one this version cannot read."""
        try:
            data = orjson.loads(raw)
            sender = Sender.from_json(data["sender"])
            if sender is None:
                return None
            return cls(
                sender=sender,
                inbox=str(data["inbox"]),
                handlers=tuple(str(name) for name in data["handlers"]),
                commands=tuple(str(name) for name in data["commands"]),
                started_at=float(data["started_at"]),
                handled=int(data["handled"]),
                failed=int(data["failed"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


def register(lane: Lane, prefix: str, info: ProcessInfo, ttl_ms: int) -> None:
    """Renew the heartbeat of ``info``'s process, and its place among the responders of its handlers."""
    now = now_ms()
    commands: list[tuple[Any, ...]] = [
        ("SET", names.process_key(prefix, info.sender.id), orjson.dumps(info.as_json()), "PX", ttl_ms)
    ]
    for channel in info.handlers:
        key = names.serves_key(prefix, channel)
        commands += [
            ("ZADD", key, now + ttl_ms, info.sender.id),
            ("ZREMRANGEBYSCORE", key, "-inf", now),
            ("PEXPIRE", key, ttl_ms),
        ]
    lane.pipeline(commands)


def unregister(lane: Lane, prefix: str, sender_id: str, handlers: tuple[str, ...]) -> None:
    """Remove a process from the registry at once (a clean stop; a killed process expires instead)."""
    commands: list[tuple[Any, ...]] = [("DEL", names.process_key(prefix, sender_id))]
    commands += [("ZREM", names.serves_key(prefix, channel), sender_id) for channel in handlers]
    lane.pipeline(commands)


def responder_ids(lane: Lane, prefix: str, channel: str) -> list[str]:
    """The ids of the processes whose heartbeat says they handle ``channel``."""
    found = lane.execute("ZRANGEBYSCORE", names.serves_key(prefix, channel), now_ms(), "+inf")
    return [member.decode() if isinstance(member, bytes) else str(member) for member in found]


def live_processes(client: redis.Redis, prefix: str) -> list[ProcessInfo]:
    """Every process with a live heartbeat in the environment ``prefix``, by role, host and pid."""
    keys = list(client.scan_iter(match=names.process_pattern(prefix), count=500))
    records = client.mget(keys) if keys else []
    found = [ProcessInfo.from_json(raw) for raw in records if raw is not None]
    return sorted(
        (info for info in found if info is not None), key=lambda p: (p.sender.role, p.sender.host, p.sender.pid)
    )
