"""The registry of live processes: each listening process renews a heartbeat record that expires without it,
and each channel's handlers are listed in a sorted set scored by the expiry of their heartbeat.

Callers read it to address one live responder directly; ``flask redis workers`` lists it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson
import redis

from flask_multi_redis.errors import InvalidMessage

from . import commands, names
from .envelope import MAX_CHANNEL, MAX_ID, Sender, is_name, now_ms
from .pipeline import PipelinedConnection
from .signing import Signer

__all__ = [
    "MAX_RESPONDERS",
    "MAX_TTL_MS",
    "ProcessInfo",
    "Registration",
    "live_processes",
    "register",
    "responder_ids",
    "signed_responders",
    "unregister",
]

#: The longest an entry may live without a heartbeat (three intervals of at most 60 s), in milliseconds; a
#: caller ignores, and every heartbeat trims, the members of a serves set scored further ahead.
MAX_TTL_MS = 180_000
#: The most responders of a channel a caller reads from the registry.
MAX_RESPONDERS = 64


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

    def summary(self) -> dict[str, Any]:
        """This process as ``flask redis workers --json`` and the dashboard list it."""
        sender = self.sender
        return {
            "sender": str(sender),
            "role": sender.role,
            "host": sender.host,
            "pid": sender.pid,
            "started_at": self.started_at,
            "handled": self.handled,
            "failed": self.failed,
            "handlers": list(self.handlers),
            "commands": list(self.commands),
        }

    @classmethod
    def from_json(cls, raw: bytes | str, signer: Signer | None = None) -> ProcessInfo | None:
        """Parse a heartbeat record; None for one this version cannot read, or whose fields are not of the
        documented types and sizes (a record anyone with write access to the keys may have forged: what is
        shown of it must be safe on a terminal), or, with a ``signer``, that is not signed with its keys."""
        try:
            if signer is not None:
                raw = signer.verify(raw if isinstance(raw, bytes) else raw.encode())
            data = orjson.loads(raw)
        except (orjson.JSONDecodeError, InvalidMessage):
            return None
        if not isinstance(data, dict):
            return None
        sender, inbox = Sender.from_json(data.get("sender")), data.get("inbox")
        handlers, commands = _names(data.get("handlers")), _names(data.get("commands"))
        started_at, handled, failed = data.get("started_at"), data.get("handled"), data.get("failed")
        if sender is None or not is_name(inbox, 512) or handlers is None or commands is None:
            return None
        if not isinstance(started_at, (int, float)) or isinstance(started_at, bool) or not 0 <= started_at < 1e11:
            return None
        if not _count(handled) or not _count(failed):
            return None
        return cls(sender, inbox, handlers, commands, float(started_at), handled, failed)


def _names(value: object) -> tuple[str, ...] | None:
    """A record's list of channel names, or None when it is not a list of at most 1000 such names."""
    if not isinstance(value, list) or len(value) > 1000 or not all(is_name(name, MAX_CHANNEL) for name in value):
        return None
    return tuple(value)


def _count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 63


class Registration:
    """This process's entry in the registry, renewed by the heartbeat until it leaves; a renewal never lists
    again a process that has left.

    :param info: what the entry says, asked afresh at each renewal.
    """

    def __init__(
        self,
        pipelined: PipelinedConnection,
        prefix: str,
        info: Callable[[], ProcessInfo],
        signer: Signer | None = None,
    ) -> None:
        self._pipelined = pipelined
        self._prefix = prefix
        self._info = info
        self._signer = signer
        self._listed = False
        self._lock = threading.Lock()

    def join(self) -> None:
        """From now on, :meth:`renew` lists the process."""
        with self._lock:
            self._listed = True

    def renew(self, ttl_ms: int, deadline: float | None = None) -> None:
        """List the process (again) for ``ttl_ms`` milliseconds, unless it has left; by the monotonic
        ``deadline``."""
        with self._lock:
            if self._listed:
                register(self._pipelined, self._prefix, self._info(), ttl_ms, self._signer, deadline)

    def leave(self, handlers: tuple[str, ...], deadline: float | None = None) -> None:
        """Leave the registry at once (a killed process expires instead), by the monotonic ``deadline``. A
        renewal still waiting for Redis then is not waited for: the entry expires (its TTL) if it wins."""
        wait = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._lock.acquire(timeout=wait):
            self._listed = False  # the renewal in progress is the last
            return
        try:
            if self._listed:
                self._listed = False
                unregister(self._pipelined, self._prefix, self._info().sender.id, handlers, deadline)
        finally:
            self._lock.release()


def register(
    pipelined: PipelinedConnection,
    prefix: str,
    info: ProcessInfo,
    ttl_ms: int,
    signer: Signer | None = None,
    deadline: float | None = None,
) -> None:
    """Renew the heartbeat of ``info``'s process (its record signed, with a ``signer``), and its place among
    the responders of its handlers, by the monotonic ``deadline``."""
    record = orjson.dumps(info.as_json())
    if signer is not None:
        record = signer.sign(record)
    serves = [names.serves_key(prefix, channel) for channel in info.handlers]
    member = info.sender.id
    key = names.process_key(prefix, member)
    pipelined.run(commands.renew(key, record, ttl_ms, serves, member, now_ms(), MAX_TTL_MS), deadline=deadline)


def unregister(
    pipelined: PipelinedConnection,
    prefix: str,
    sender_id: str,
    handlers: tuple[str, ...],
    deadline: float | None = None,
) -> None:
    """Remove a process from the registry at once (by the monotonic ``deadline``, if any)."""
    serves = [names.serves_key(prefix, channel) for channel in handlers]
    pipelined.run(commands.leave(names.process_key(prefix, sender_id), serves, sender_id), deadline=deadline)


def responder_ids(
    pipelined: PipelinedConnection, prefix: str, channel: str, deadline: float | None = None
) -> list[str]:
    """The ids of the processes whose heartbeat says they handle ``channel``: at most MAX_RESPONDERS, of those
    whose entry expires within MAX_TTL_MS from now (a score further ahead was not written by a heartbeat)."""
    now = now_ms()
    command = commands.responders(names.serves_key(prefix, channel), now, now + MAX_TTL_MS, MAX_RESPONDERS)
    found = pipelined.execute(*command, deadline=deadline)
    ids = (member.decode(errors="replace") if isinstance(member, bytes) else str(member) for member in found)
    return [member for member in ids if is_name(member, MAX_ID)]


def signed_responders(
    pipelined: PipelinedConnection,
    prefix: str,
    channel: str,
    ids: list[str],
    signer: Signer,
    deadline: float | None = None,
) -> list[str]:
    """Of ``ids``, those whose heartbeat record is signed with ``signer``'s keys and lists ``channel`` among its
    handlers: a member that anyone may add to a serves set takes no request unless its process signs."""
    if not ids:
        return []
    keys = (names.process_key(prefix, member) for member in ids)
    records = pipelined.execute(*commands.records(keys), deadline=deadline)
    kept = []
    for member, raw in zip(ids, records, strict=True):
        info = ProcessInfo.from_json(raw, signer) if isinstance(raw, bytes) else None
        if info is not None and info.sender.id == member and channel in info.handlers:
            kept.append(member)
    return kept


def live_processes(
    client: redis.Redis, prefix: str, limit: int = 1000, signer: Signer | None = None
) -> tuple[list[ProcessInfo], bool]:
    """The processes with a live heartbeat in the environment ``prefix``, by role, host and pid: at most
    ``limit`` of them, read a page at a time (with a ``signer``, only signed records); and whether there are
    more."""
    found: list[ProcessInfo] = []
    more = False
    keys: list[Any] = []
    for key in client.scan_iter(match=names.process_pattern(prefix), count=500):
        keys.append(key)
        if len(keys) == 500:
            found += _records(client, keys, signer)
            keys = []
        if len(found) > limit:  # one more than asked for: there are more
            more = True
            break
    if keys and len(found) <= limit:
        found += _records(client, keys, signer)
    more = more or len(found) > limit
    ordered = sorted(found, key=lambda p: (p.sender.role, p.sender.host, p.sender.pid))
    return ordered[:limit], more


def _records(client: redis.Redis, keys: list[Any], signer: Signer | None) -> list[ProcessInfo]:
    parsed = [ProcessInfo.from_json(raw, signer) for raw in client.mget(keys) if raw is not None]
    return [info for info in parsed if info is not None]
