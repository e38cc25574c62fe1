"""The registry of live processes: each listening process renews a heartbeat record that expires without it,
and each channel's handlers are listed in a sorted set scored by the expiry of their heartbeat.

Callers read it to address one live responder directly; ``flask redis workers`` lists it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import redis

from . import commands, names
from .envelope import Sender, now_ms
from .pipeline import PipelinedConnection

__all__ = ["ProcessInfo", "Registration", "live_processes", "register", "responder_ids", "unregister"]


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


class Registration:
    """This process's entry in the registry, renewed by the heartbeat until it leaves; a renewal never lists
    again a process that has left.

    :param info: what the entry says, asked afresh at each renewal.
    """

    def __init__(self, pipelined: PipelinedConnection, prefix: str, info: Callable[[], ProcessInfo]) -> None:
        self._pipelined = pipelined
        self._prefix = prefix
        self._info = info
        self._listed = False
        self._lock = threading.Lock()

    def join(self) -> None:
        """From now on, :meth:`renew` lists the process."""
        with self._lock:
            self._listed = True

    def renew(self, ttl_ms: int) -> None:
        """List the process (again) for ``ttl_ms`` milliseconds, unless it has left."""
        with self._lock:
            if self._listed:
                register(self._pipelined, self._prefix, self._info(), ttl_ms)

    def leave(self, handlers: tuple[str, ...]) -> None:
        """Leave the registry at once (a killed process expires instead)."""
        with self._lock:
            if self._listed:
                self._listed = False
                unregister(self._pipelined, self._prefix, self._info().sender.id, handlers)


def register(pipelined: PipelinedConnection, prefix: str, info: ProcessInfo, ttl_ms: int) -> None:
    """Renew the heartbeat of ``info``'s process, and its place among the responders of its handlers."""
    record = orjson.dumps(info.as_json())
    serves = [names.serves_key(prefix, channel) for channel in info.handlers]
    member = info.sender.id
    pipelined.run(commands.renew(names.process_key(prefix, member), record, ttl_ms, serves, member, now_ms()))


def unregister(pipelined: PipelinedConnection, prefix: str, sender_id: str, handlers: tuple[str, ...]) -> None:
    """Remove a process from the registry at once."""
    serves = [names.serves_key(prefix, channel) for channel in handlers]
    pipelined.run(commands.leave(names.process_key(prefix, sender_id), serves, sender_id))


def responder_ids(pipelined: PipelinedConnection, prefix: str, channel: str) -> list[str]:
    """The ids of the processes whose heartbeat says they handle ``channel``."""
    found = pipelined.execute(*commands.responders(names.serves_key(prefix, channel), now_ms()))
    return [member.decode() if isinstance(member, bytes) else str(member) for member in found]


def live_processes(client: redis.Redis, prefix: str) -> list[ProcessInfo]:
    """Every process with a live heartbeat in the environment ``prefix``, by role, host and pid."""
    keys = list(client.scan_iter(match=names.process_pattern(prefix), count=500))
    records = client.mget(keys) if keys else []
    found = [ProcessInfo.from_json(raw) for raw in records if raw is not None]
    return sorted(
        (info for info in found if info is not None), key=lambda p: (p.sender.role, p.sender.host, p.sender.pid)
    )
