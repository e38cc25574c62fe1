"""The calling side of the broker's machinery: sending requests and broadcasts, and collecting replies.

A request goes to ONE live responder's own inbox channel, picked in turn from the registry, so exactly one
handler runs without a claim on the hot path; when no registered responder receives it, it goes to the
channel's shared request channel, where subscribers race for a SET NX claim; when nobody receives that either,
:class:`NoResponders` is raised at once. Replies are kept in a list until the request's deadline as well as
published to the caller's inbox: a caller whose connection was away reads the list, and deletes it with its
next command once it has the reply. PUBLISH is never retried: a second one could run a handler twice.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from flask_multi_redis.errors import BrokerUnavailable, InvalidMessage, NoResponders

from . import names, registry
from .channel import Channel
from .envelope import Envelope, Kind, Sender, deadline_after, pack, unpack
from .lane import Lane
from .listener import Listener
from .wire import Command, Wire, error_code

if TYPE_CHECKING:
    from flask_multi_redis.session import RedisSession

    from .broker import Broker
    from .serving import Counters

__all__ = ["MARKER", "MARKER_TTL_MS", "POOL_WAIT", "WAIT_SLICE", "Call", "Calling", "new_id"]

log = logging.getLogger(__name__)

#: How long a call waits for one of the broker's pooled connections, in seconds.
POOL_WAIT = 5.0
#: The longest single wait of a caller on its reply list, in seconds (at most half the socket timeout).
WAIT_SLICE = 2.0

#: What a direct caller pushes onto its own reply list to end its wait when its request reached nobody.
MARKER = b""
#: How long that marker may stay in the list, in milliseconds (the caller deletes it).
MARKER_TTL_MS = 60_000


def _reason(error: BaseException) -> str:
    """What went wrong, for an error message: the exception's type, and for an error reply its code (the first
    word, as in ``NOPERM`` or ``OOM``: never a value the command carried)."""
    if isinstance(error, redis.ResponseError) and str(error):
        return f"{type(error).__name__} {error_code(error)}"
    return type(error).__name__


def _unlink(keys: list[str]) -> list[Command]:
    """The command that deletes ``keys`` (sent ahead of the next PUBLISH), or none."""
    return [("UNLINK", *keys)] if keys else []


def new_id() -> str:
    """An unguessable correlation id (128 random bits from the OS, in hex)."""
    return os.urandom(16).hex()


@dataclass
class Call:
    """A request or gathered broadcast in flight: the replies that have come in, and how many are awaited."""

    id: str
    expected: int
    replies: list[Envelope] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    senders: set[str] = field(default_factory=set)

    def add(self, envelope: Envelope) -> None:
        """Count a reply once per sender: a reply may arrive both by pub/sub and from the kept list."""
        if envelope.sender is not None:
            if envelope.sender.id in self.senders:
                return
            self.senders.add(envelope.sender.id)
        self.replies.append(envelope)
        if len(self.replies) >= self.expected:
            self.done.set()

    def expect(self, count: int) -> None:
        self.expected = count
        if len(self.replies) >= count:
            self.done.set()


class Calling:
    """Sends requests and broadcasts, and collects their replies; :class:`~.runtime.Runtime` builds the state."""

    broker: Broker
    session: RedisSession
    redis: redis.Redis
    prefix: str
    inbox: str
    sender: Sender
    counters: Counters
    listener: Listener
    lane: Lane
    _waiting: Wire
    _wait_slice: float
    _calls: dict[str, Call]
    _spent: collections.deque[str]
    _direct: threading.Lock
    _responders: dict[str, tuple[float, list[str]]]
    _turn: itertools.count[int]
    _stopping: threading.Event

    @contextlib.contextmanager
    def call(self, expected: int, register: bool = True) -> Iterator[Call]:
        """A new call; registered (unless told not to), its replies on the inbox are collected while the block
        runs."""
        call = Call(id=new_id(), expected=expected)
        if register:
            self._calls[call.id] = call
        try:
            yield call
        finally:
            self._calls.pop(call.id, None)

    def envelope(
        self, kind: Kind, call_id: str, channel: Channel[Any, Any], body: bytes, timeout: float | None, reply: bool
    ) -> bytes:
        return pack(
            kind,
            call_id,
            channel.name,
            body,
            reply_to=self.inbox if reply else None,
            deadline=None if timeout is None else deadline_after(timeout),
            sender=self.sender,
            max_size=self.broker.max_message_size,
        )

    def send_request(self, channel: Channel[Any, Any], data: bytes, avoid: frozenset[str] = frozenset()) -> None:
        """Deliver to exactly one responder (see :meth:`_targets`), else raise :class:`NoResponders`."""
        for wire, target in self._targets(channel.name, avoid):
            if self._publish(wire, data):
                return
            if target is not None:
                self._forget(channel.name, target)
        raise self._nobody(channel)

    def broadcast(self, channel: Channel[Any, Any], data: bytes) -> int:
        return self._publish(names.channel_wire(self.prefix, channel.name), data)

    def ask(self, channel: Channel[Any, Any], body: bytes, deadline: float, avoid: frozenset[str]) -> list[Envelope]:
        """Send one request and wait for its reply until the monotonic ``deadline``; [] when none came.

        One call at a time per process waits on its own reply list (see :meth:`_ask_direct`), the sequential
        caller's common case. Calls made meanwhile wait on the inbox instead, so in-flight calls do not each
        hold a connection.
        """
        if self._direct.acquire(blocking=False):
            try:
                return self._ask_direct(channel, body, deadline, avoid)
            finally:
                if self._stopping.is_set():
                    self._waiting.close()  # the broker stopped meanwhile and left that to this call
                self._direct.release()
        with self.call(expected=1) as call:
            data = self.envelope("request", call.id, channel, body, deadline - time.monotonic(), reply=True)
            self.send_request(channel, data, avoid)
            return self.wait(call, deadline)

    def _ask_direct(
        self, channel: Channel[Any, Any], body: bytes, deadline: float, avoid: frozenset[str]
    ) -> list[Envelope]:
        """The request goes out without a reply_to, so its reply is only kept in its list, and the PUBLISH and
        the wait on that list (BLMOVE) go in one write on the waiting connection: no hand-over from the
        listener thread, and one round trip fewer. When nobody received it, an empty marker pushed onto the
        list ends the wait at once, and the next target is tried."""
        call_id = new_id()
        key = names.reply_key(self.prefix, call_id)
        data = self.envelope("request", call_id, channel, body, deadline - time.monotonic(), reply=False)
        try:
            for attempt, (wire, target) in enumerate(self._targets(channel.name, avoid)):
                if self._publish_and_wait(wire, data, key, deadline, marked=attempt > 0):
                    return self._wait_listed(call_id, key, deadline, sent=True)
                if target is not None:
                    self._forget(channel.name, target)
            raise self._nobody(channel)
        finally:  # a call interrupted half-way leaves replies owed: the wire notices it before its next use
            self._spent.append(key)  # deleted with the next command

    def _publish_and_wait(self, wire: str, data: bytes, key: str, deadline: float, marked: bool) -> bool:
        """PUBLISH ``data`` and start waiting on ``key``; False when nobody received it (and the wait ended)."""
        spent = self._take_spent()
        if marked:
            spent.append(key)  # the marker an earlier attempt left
        commands = [*_unlink(spent), ("PUBLISH", wire, data), self._blmove(key, deadline)]
        waiting = self._waiting
        try:
            waiting.reset_if_stale()
            waiting.send(commands)
            if spent:
                waiting.reply()  # the UNLINK's: a failed one does no harm
            receivers = waiting.reply()
            if isinstance(receivers, redis.RedisError):
                raise receivers
        except redis.RedisError as exc:
            raise self._not_published(wire, spent, exc) from exc
        if receivers:
            return True
        self._end_wait(key)
        return False

    def _end_wait(self, key: str) -> None:
        """End the BLMOVE waiting on ``key`` for a request that reached nobody: push the marker, read the wait's
        reply (the marker, or nil when its time ran out first; the next attempt deletes the list either way)."""
        try:
            self.lane.pipeline([("RPUSH", key, MARKER), ("PEXPIRE", key, MARKER_TTL_MS)])
        except redis.RedisError:
            self._waiting.close()  # the wait is still on: drop the connection with it
            return
        with contextlib.suppress(redis.RedisError):  # a reply still owed: the wire starts afresh before its next use
            self._waiting.reply()

    def _wait_listed(self, call_id: str, key: str, deadline: float, sent: bool) -> list[Envelope]:
        """Wait on the reply list ``key`` until the monotonic ``deadline`` (``sent``: a first BLMOVE is out).

        BLMOVE from the list onto itself waits without taking the reply out: a lost connection loses nothing,
        the wait starts again on a new one.
        """
        waiting = self._waiting
        discard: list[Command] = []
        pause = 0.0  # after a lost connection: 0.05 s, doubling up to 1 s
        while True:
            try:
                if not sent:
                    if deadline - time.monotonic() <= 0:
                        return []
                    waiting.send([*discard, self._blmove(key, deadline)])
                    for _ in discard:
                        waiting.reply()
                    discard = []
                sent = False
                found = waiting.reply()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                waiting.close()
                if not pause:
                    log.warning("waiting for the reply on %s: %s; retrying until the deadline", key, _reason(exc))
                pause = min(1.0, max(0.05, 2 * pause), max(0.0, deadline - time.monotonic()))
                time.sleep(pause)
                continue
            if isinstance(found, redis.RedisError):  # e.g. OOM, LOADING, READONLY: the wait itself was refused
                raise BrokerUnavailable(f"could not wait for the reply on {key!r}: {_reason(found)}") from found
            if found == MARKER:  # pushed late by an earlier attempt, after that attempt's UNLINK
                discard = [("LREM", key, 0, MARKER)]
            elif isinstance(found, bytes):
                envelope = self._unpack(key.encode(), found)
                if envelope is not None and envelope.kind in ("reply", "error") and envelope.id == call_id:
                    return [envelope]
                discard = [("LREM", key, 1, found)]  # not our reply: take it out, or BLMOVE returns it again

    def _blmove(self, key: str, deadline: float) -> Command:
        wait = max(0.01, min(deadline - time.monotonic(), self._wait_slice))
        return ("BLMOVE", key, key, "RIGHT", "RIGHT", round(wait, 3))

    def _targets(self, channel: str, avoid: frozenset[str]) -> Iterator[tuple[str, str | None]]:
        """Where a request goes, in order, with the responder each is: every live responder in the registry
        by turns (not those to ``avoid``), each on its own inbox, then the shared request channel, whose
        subscribers race for a claim."""
        for target in self._responder_ids(channel):
            if target not in avoid:
                yield names.inbox_channel(self.prefix, target), target
        yield names.request_channel(self.prefix, channel), None

    def _nobody(self, channel: Channel[Any, Any]) -> NoResponders:
        return NoResponders(f"nobody serves channel {channel.name!r} (prefix {self.prefix!r})")

    def wait(self, call: Call, deadline: float) -> list[Envelope]:
        """The replies that arrived by the monotonic ``deadline``, including any kept while we were disconnected."""
        if call.done.wait(max(0.0, deadline - time.monotonic())):
            self._spent.append(names.reply_key(self.prefix, call.id))
        else:
            with contextlib.suppress(redis.RedisError):
                for data in self._stored_replies([call.id])[call.id]:
                    self._deliver(data, "stored reply")
        return list(call.replies)

    def _publish(self, wire: str, data: bytes) -> int:
        """PUBLISH, deleting the reply lists of finished calls in the same round trip."""
        spent = self._take_spent()
        try:
            receivers = self.lane.pipeline([*_unlink(spent), ("PUBLISH", wire, data)], raise_errors=False)[-1]
            if isinstance(receivers, redis.RedisError):  # a failed UNLINK does no harm
                raise receivers
        except redis.RedisError as exc:
            raise self._not_published(wire, spent, exc) from exc
        return int(receivers)

    def _not_published(self, wire: str, spent: list[str], error: Exception) -> BrokerUnavailable:
        """The error for a PUBLISH that failed; the reply lists its write was to delete go back for a later one."""
        self._spent.extend(spent)
        return BrokerUnavailable(f"could not publish on {wire!r}: {_reason(error)}")

    def _flush_spent(self) -> None:
        spent = self._take_spent()
        if spent:
            try:
                self.lane.execute("UNLINK", *spent)
            except BaseException:
                self._spent.extend(spent)  # next time
                raise

    def _take_spent(self) -> list[str]:
        """The reply lists to delete, taken out one by one: a key another thread adds meanwhile is not lost."""
        taken: list[str] = []
        spent = self._spent
        while spent:
            try:
                taken.append(spent.popleft())
            except IndexError:  # another thread took the last one
                break
        return taken

    def _responder_ids(self, channel: str) -> list[str]:
        now = time.monotonic()
        cached = self._responders.get(channel)
        if cached is None or cached[0] < now:
            try:
                ids = registry.responder_ids(self.lane, self.prefix, channel)
            except redis.RedisError as exc:
                raise BrokerUnavailable(f"could not read the responders of {channel!r}: {_reason(exc)}") from exc
            cached = (now + self.broker.registry_cache, ids)
            self._responders[channel] = cached
        ids = cached[1]
        if len(ids) < 2:
            return list(ids)
        start = next(self._turn) % len(ids)
        return ids[start:] + ids[:start]

    def _forget(self, channel: str, target: str) -> None:
        cached = self._responders.get(channel)
        if cached is not None and target in cached[1]:
            self._responders[channel] = (cached[0], [other for other in cached[1] if other != target])

    def _stored_replies(self, call_ids: list[str]) -> dict[str, list[bytes]]:
        pipe = self.redis.pipeline(transaction=True)  # read and delete at once: no reply slips between them
        for call_id in call_ids:
            key = names.reply_key(self.prefix, call_id)
            pipe.lrange(key, 0, -1)
            pipe.delete(key)
        results = pipe.execute()
        return {call_id: list(results[2 * index] or []) for index, call_id in enumerate(call_ids)}

    def _catch_up(self) -> None:
        """After a (re)connect: read the replies kept for our calls while the inbox was not subscribed."""
        call_ids = list(self._calls)
        if not call_ids:
            return
        for stored in self._stored_replies(call_ids).values():
            for data in stored:
                self._deliver(data, "stored reply")

    def _deliver(self, data: bytes, where: str) -> None:
        envelope = self._unpack(where.encode(), data)
        if envelope is not None and envelope.kind in ("reply", "error"):
            self._resolve(envelope)

    def _resolve(self, envelope: Envelope) -> None:
        call = self._calls.get(envelope.id)
        if call is None:
            log.debug("late or unknown reply dropped: id=%s channel=%s", envelope.id, envelope.channel)
            return
        call.add(envelope)

    def _unpack(self, wire: bytes, data: bytes) -> Envelope | None:
        try:
            return unpack(data, self.broker.max_message_size)
        except InvalidMessage as exc:
            self.counters.count("dropped")
            log.warning("dropped a message on %s: %s", wire.decode(errors="replace"), exc)
            return None

    def _drop(self, envelope: Envelope, reason: str) -> None:
        self.counters.count("dropped")
        log.warning("dropped %s id=%s channel=%s: %s", envelope.kind, envelope.id, envelope.channel, reason)
