"""The calling part of a process's broker: it sends requests and broadcasts, and collects their replies.

A request goes to ONE live responder's inbox, picked in turn from the registry (:mod:`.directory`), so exactly
one handler runs without a claim on the hot path; when no registered responder receives it, it goes to the
channel's shared request channel, where subscribers race for a SET NX claim; when nobody receives that either,
:class:`NoResponders` is raised at once. Answers are kept in reply lists until the request's deadline as well as
published to the caller's inbox (:mod:`.reply_lists`). PUBLISH is never retried: a second one could run a
handler twice.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis

from flask_multi_redis.errors import NoResponders

from . import commands, names
from .channel import Channel
from .directory import ResponderDirectory
from .envelope import Envelope, Kind, Sender, deadline_after, pack
from .instruments import CALL_IDS, OUTGOING
from .intake import Intake
from .pipeline import PipelinedConnection
from .reply_lists import DeferredUnlink, ReplyListWait
from .serving import note_broker_call

__all__ = ["RECONNECT_GRACE", "Call", "Caller", "new_id"]

#: How long a request is offered again to registered responders that received nothing (they may be
#: resubscribing), in seconds, before NoResponders.
RECONNECT_GRACE = 0.5

log = logging.getLogger(__name__)


def new_id() -> str:
    """An unguessable correlation id (128 random bits from the OS, in hex), noted for the DEBUG line of the
    instrumented call it is made in."""
    made = os.urandom(16).hex()
    noted = CALL_IDS.get()
    if noted is not None:
        noted.append(made)
    return made


@dataclass
class Call:
    """A request or gathered broadcast in flight: the replies that have come in, and how many are awaited."""

    id: str
    channel: str  # an answer on another channel is no answer to this call
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


class Caller:
    """Sends this process's requests and broadcasts, and collects their replies (on its inbox, or on a reply
    list for the one call that waits there).

    """

    def __init__(
        self,
        *,
        prefix: str,
        sender: Sender,
        inbox: str,
        max_message_size: int,
        pipelined: PipelinedConnection,
        directory: ResponderDirectory,
        unlinks: DeferredUnlink,
        reply_wait: ReplyListWait,
        intake: Intake,
        verbs: commands.Verbs = commands.CLASSIC,
    ) -> None:
        self.prefix = prefix
        self.verbs = verbs
        self.sender = sender
        self.inbox = inbox
        self.max_message_size = max_message_size
        self._pipelined = pipelined
        self._directory = directory
        self._unlinks = unlinks
        self._reply_wait = reply_wait
        self._intake = intake
        self._calls: dict[str, Call] = {}

    @property
    def waiting(self) -> int:
        """Calls waiting for their replies, on the inbox or on a reply list."""
        return len(self._calls) + self._reply_wait.busy

    def settle(self, deadline: float) -> bool:
        """Let the calls waiting on the inbox end (answered, or at their own deadlines) until the monotonic
        ``deadline``; True when none is left."""
        while self._calls:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            waiting = list(self._calls.values())[:1]  # a copy: calls end on other threads meanwhile
            if waiting:
                waiting[0].done.wait(min(left, 0.05))  # a gather's ends at its deadline, not when it is set
        return True

    @contextlib.contextmanager
    def call(self, channel: Channel[Any, Any], expected: int) -> Iterator[Call]:
        """A new call, whose replies on the inbox are collected while the block runs."""
        note_broker_call()  # a handler waiting on it must not hold up the listener, which brings its replies
        call = Call(id=new_id(), channel=channel.name, expected=expected)
        self._calls[call.id] = call
        try:
            yield call
        finally:
            self._calls.pop(call.id, None)

    def envelope(
        self, kind: Kind, call_id: str, channel: Channel[Any, Any], body: bytes, timeout: float | None, reply: bool
    ) -> bytes:
        """An envelope from this process; ``reply``: answers go to its inbox too, not only to the reply list."""
        return pack(
            kind,
            call_id,
            channel.name,
            body,
            reply_to=self.inbox if reply else None,
            deadline=None if timeout is None else deadline_after(timeout),
            sender=self.sender,
            headers=OUTGOING.get(),
            max_size=self.max_message_size,
            signer=self._intake.signer,
        )

    def broadcast(self, channel: Channel[Any, Any], data: bytes, deadline: float | None = None) -> int:
        """PUBLISH on the channel of ``channel``'s commands; the number of processes that received it."""
        return self._publish(names.command_channel(self.prefix, channel.name), data, deadline)

    def request(
        self, channel: Channel[Any, Any], body: bytes, deadline: float, avoid: frozenset[str]
    ) -> Envelope | None:
        """Send one request and wait for its answer until the monotonic ``deadline``; None when none came.

        One call at a time waits on its own reply list (:class:`.reply_lists.ReplyListWait`); calls made
        meanwhile wait on the inbox, so that in-flight calls do not each hold a connection.
        """
        note_broker_call()
        if self._reply_wait.take():
            try:
                return self._request_on_reply_list(channel, body, deadline, avoid)
            finally:
                self._reply_wait.release()
        with self.call(channel, expected=1) as call:
            data = self.envelope("request", call.id, channel, body, deadline - time.monotonic(), reply=True)
            self._deliver(channel, lambda target, _: self._publish(target, data, deadline) > 0, avoid, deadline)
            replies = self.wait(call, deadline)
        return replies[0] if replies else None

    def wait(self, call: Call, deadline: float) -> list[Envelope]:
        """The replies that arrived by the monotonic ``deadline``, including any kept while we were disconnected."""
        if call.done.wait(max(0.0, deadline - time.monotonic())):
            self._unlinks.add(names.reply_key(self.prefix, call.id))
        else:
            with contextlib.suppress(redis.RedisError):
                for data in self._kept_replies([call.id], time.monotonic())[call.id]:
                    self._collect(data)
        return list(call.replies)

    def resolve(self, envelope: Envelope) -> None:
        """A reply (or error) arrived on the inbox: hand it to its call."""
        call = self._calls.get(envelope.id)
        if call is None:
            log.debug("late or unknown reply dropped: id=%s channel=%s", envelope.id, envelope.channel)
        elif envelope.channel != call.channel:
            self._intake.drop(envelope, f"an answer for channel {call.channel!r} came on another")
        else:
            call.add(envelope)

    def read_kept_replies(self) -> None:
        """After the inbox was (re)subscribed: the replies kept for our calls while it was not."""
        call_ids = list(self._calls)
        if call_ids:
            for kept in self._kept_replies(call_ids, None).values():
                for data in kept:
                    self._collect(data)

    def _request_on_reply_list(
        self, channel: Channel[Any, Any], body: bytes, deadline: float, avoid: frozenset[str]
    ) -> Envelope | None:
        call_id = new_id()
        key = names.reply_key(self.prefix, call_id)
        data = self.envelope("request", call_id, channel, body, deadline - time.monotonic(), reply=False)
        try:
            self._deliver(
                channel,
                lambda target, attempt: self._reply_wait.publish(target, data, key, deadline, attempt > 0),
                avoid,
                deadline,
            )
            return self._reply_wait.wait(call_id, channel.name, key, deadline, started=True)
        finally:  # a call interrupted half-way leaves replies owed: its connection notices before its next use
            self._unlinks.add(key)

    def _deliver(
        self,
        channel: Channel[Any, Any],
        publish: Callable[[str, int], bool],
        avoid: frozenset[str],
        deadline: float,
    ) -> None:
        """Publish to exactly one responder, trying each target in turn (see :class:`.ResponderDirectory`);
        ``publish(target, attempt)`` says whether anybody received it. :class:`NoResponders` when nobody did.

        When the registry listed live responders and none received it, they may be resubscribing after a lost
        connection (a killed connection, a server restart): they are tried again, with short pauses, for up to
        RECONNECT_GRACE seconds (never past the deadline) before NoResponders.
        """
        attempt, grace_until = 0, 0.0
        while True:
            for target, responder in self._directory.targets(channel.name, avoid, deadline):
                if publish(target, attempt):
                    return
                attempt += 1
                if responder is not None:
                    self._directory.forget(channel.name, responder)
            now = time.monotonic()
            grace_until = grace_until or now + RECONNECT_GRACE
            if not self._directory.registered(channel.name) or now >= min(grace_until, deadline):
                log.debug("nobody received a request on %s: %d publish(es) tried", channel.name, attempt)
                raise NoResponders(f"nobody serves channel {channel.name!r} (prefix {self.prefix!r})")
            time.sleep(min(0.05 * attempt, grace_until - now, max(0.0, deadline - now)))
            self._directory.refresh(channel.name)

    def _publish(self, channel: str, data: bytes, deadline: float | None) -> int:
        """PUBLISH, deleting the reply lists of finished calls in the same round trip; how many of the channel's
        subscribers received it (not counting pattern subscribers: see :func:`.commands.counted_publish`)."""
        unlinked = self._unlinks.take()
        try:
            sent = [*commands.unlink(unlinked), *commands.counted_publish(channel, data, self.verbs)]
            replies = self._pipelined.run(sent, raise_errors=False, deadline=deadline)  # a failed UNLINK: no harm
            return commands.receivers(replies[-4:])
        except redis.RedisError as exc:
            raise self._unlinks.not_published(channel, unlinked, exc) from exc

    def _kept_replies(self, call_ids: list[str], deadline: float | None) -> dict[str, list[bytes]]:
        """Read and delete the reply lists of ``call_ids`` at once (no reply slips between the two)."""
        keys = [names.reply_key(self.prefix, call_id) for call_id in call_ids]
        replies = self._pipelined.run(commands.take_lists(keys), deadline=deadline)
        return dict(zip(call_ids, commands.taken_lists(replies[-1]), strict=True))

    def _collect(self, data: bytes) -> None:
        envelope = self._intake.read(b"a kept reply", data)
        if envelope is not None and envelope.kind in ("reply", "error"):
            self.resolve(envelope)
