"""A pipelined connection: one connection for the broker's short commands, shared by every thread or greenlet
of the process, with automatic pipelining.

It writes on a :class:`~flask_multi_redis.direct.DirectConnection` of its own. Callers queue their commands;
whoever finds the connection free sends everything queued in one write and reads the replies in order, so calls
made at the same time share round trips and a process needs one connection however many calls it has in flight.
A blocking command (BLMOVE with a timeout) would hold up everybody behind it: the one call that waits that way
has a connection of its own.

A process that answers need not wait for the replies to its answer's commands: :meth:`PipelinedConnection.post`
sends commands and leaves their replies to be read after the next answer's write, or before the connection's
next round trip (a heartbeat comes every few seconds), so the answering thread is not woken for them while the
caller it answered is, and does not read them before its next answer goes out. Commands whose replies were lost
with the connection are sent once more.

Deadlines hold: a round trip's reads wait no longer than the earliest deadline among the callers it serves, a
caller still queued at its deadline gives up, and a caller with a deadline sends nobody else's commands after
its own: it wakes the next queued caller instead, which sends them. So a caller whose commands shared a round
trip with one of an earlier deadline may get ``redis.TimeoutError`` before its own deadline (or with none):
whether its commands ran is then unknown, as with any timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from flask_multi_redis.direct import Command, DirectConnection

__all__ = ["SLACK", "Check", "PipelinedConnection"]

log = logging.getLogger(__name__)

#: How long past a caller's deadline a read may go on, in seconds: every call ends by its deadline and this.
SLACK = 0.5

#: Told what became of posted commands: their replies (error replies among them), or the error that lost them.
Check = Callable[[list[Any] | redis.RedisError], None]


@dataclass
class _Batch:
    """One caller's commands and, once sent, their replies (or the error that stopped them)."""

    commands: Sequence[Command]
    deadline: float | None = None  # monotonic; None: the connection's socket timeout bounds each read
    replies: list[Any] = field(default_factory=list)
    error: BaseException | None = None
    finished: bool = False
    wake: threading.Event | None = None  # for a caller that waits: set when finished, or when it is its turn

    def finish(self, replies: list[Any], error: BaseException | None = None) -> None:
        self.replies, self.error, self.finished = replies, error, True
        if self.wake is not None:
            self.wake.set()

    def outcome(self) -> list[Any]:
        """The replies, once sent; the error that stopped them is raised."""
        if self.error is not None:
            raise self.error
        return self.replies


@dataclass
class _Posted:
    """Commands sent without waiting for their replies, and who is told of them."""

    commands: Sequence[Command]
    check: Check


class PipelinedConnection:
    """Runs commands on a connection of its own, made like the ``client``'s, pipelining concurrent callers."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.round_trips = 0  # writes so far, each with every command queued at the time
        self._queued: list[_Batch] = []
        self._queue_lock = threading.Lock()
        self._sending = threading.Lock()
        self._connection = DirectConnection(client)
        self._posted: list[_Posted] = []  # sent, their replies not read yet: they come first on the connection
        self._closed = False

    def post(self, commands: Sequence[Command], check: Check) -> None:
        """Send ``commands`` without waiting for their replies, which ``check`` is given once read: after the next
        post is written (so that reading them does not delay it), before the connection's next round trip, or
        when it closes. When the connection is lost before they are read, they are sent once more, at once (so
        they may run twice: post only commands for which that is harmless), and ``check`` gets the error if that
        fails too. While another caller has the connection, they go with its round trip and ``check`` is told at
        once.

        :raises redis.RedisError: the commands could not be written (nothing of them ran).
        """
        if not self._sending.acquire(blocking=False):
            check(self.run(commands, raise_errors=False))
            return
        try:
            if self._posted and self._connection.send_more(commands):  # the write first, then earlier replies
                self.round_trips += 1
                self._posted.append(_Posted(commands, check))
                self._settle(None, keep=1)
                if self._connection.readable():  # these replies came already, or the server closed the connection
                    self._settle(None)  # which is found out now, and they are sent again at once
            else:
                self._round_trip(commands, None, answered=0)
                self._posted.append(_Posted(commands, check))
        except Exception:
            self._hand_over(None)
            raise
        except BaseException:  # interrupted: let go at once
            self._sending.release()
            raise
        self._hand_over(None)

    def execute(self, *args: Any, deadline: float | None = None) -> Any:
        """One command; its raw reply (no redis-py response callbacks)."""
        return self.run([args], deadline=deadline)[-1]

    def run(
        self, commands: Sequence[Command], *, raise_errors: bool = True, deadline: float | None = None
    ) -> list[Any]:
        """Several commands sent together; their raw replies, in order. An error reply raises the exception
        redis-py would, unless ``raise_errors`` is false: then it is returned among the replies.

        :param deadline: a monotonic time by which the caller must have its replies, or an error, within
            SLACK (see the module's docstring). By default the socket timeout bounds each read.
        :raises redis.TimeoutError: the deadline passed.
        """
        batch = _Batch(commands, deadline)
        if self._sending.acquire(blocking=False):
            if not self._queued:
                replies = self._send_alone(batch)
            else:
                self._send_as_sender(batch)
                replies = batch.outcome()
        else:
            replies = self._wait_for_sender(batch)
        if raise_errors:
            for reply in replies:
                if isinstance(reply, redis.RedisError):
                    raise reply
        return replies

    def _send_alone(self, batch: _Batch) -> list[Any]:
        """With the connection taken and nothing queued (the common case): one round trip of our own."""
        try:
            replies = self._round_trip(batch.commands, batch.deadline)
        except Exception:
            self._hand_over(batch.deadline)
            raise
        except BaseException:  # interrupted: let go at once
            self._sending.release()
            raise
        self._hand_over(batch.deadline)
        return replies

    def _wait_for_sender(self, batch: _Batch) -> list[Any]:
        """Queue our commands for whoever sends, or become the sender ourselves when the connection comes free;
        give up at the deadline if they are still queued (once taken, they are read by ours and SLACK)."""
        wake = batch.wake = threading.Event()
        with self._queue_lock:
            self._queued.append(batch)
        try:
            while True:
                wake.clear()
                if batch.finished:
                    return batch.outcome()
                if self._sending.acquire(blocking=False):
                    self._send_as_sender(None, batch.deadline)
                elif batch.deadline is not None and time.monotonic() >= batch.deadline and self._unqueue(batch):
                    raise redis.TimeoutError("the broker's pipelined connection stayed busy past the deadline")
                else:
                    wake.wait(0.05)  # set when our batch is done, or when the sender hands over; 0.05: a safety net
        except BaseException:  # interrupted (gevent.Timeout, GreenletExit): commands not sent yet are not sent
            self._unqueue(batch)
            raise

    def _unqueue(self, batch: _Batch) -> bool:
        """Take ``batch`` out of the queue; False when a sender has taken it already."""
        with self._queue_lock:
            if batch in self._queued:
                self._queued.remove(batch)
                return True
        return False

    def _hand_over(self, deadline: float | None) -> None:
        """Let go of the connection. Batches queued meanwhile, whose callers found the connection taken, wait
        for a sender: a caller without a deadline becomes it; one with a deadline wakes the first of them."""
        self._sending.release()
        if deadline is not None:
            with self._queue_lock:
                first = self._queued[0] if self._queued else None
            if first is not None and first.wake is not None:
                first.wake.set()
            return
        while self._queued and self._sending.acquire(blocking=False):
            try:
                self._send_queued(None, None)
            finally:
                self._sending.release()

    def _send_as_sender(self, own: _Batch | None, deadline: float | None = None) -> None:
        """With the connection taken: send ``own`` and what is queued, then let go of it."""
        if own is not None:
            deadline = own.deadline
        try:
            self._send_queued(own, deadline)
        except BaseException:
            self._sending.release()
            raise
        self._hand_over(deadline)

    def _send_queued(self, own: _Batch | None, deadline: float | None) -> None:
        """Send ``own`` and everything queued, in one write; a sender without a ``deadline`` goes on while more
        is queued (one with a deadline leaves the rest to :meth:`_hand_over`)."""
        first = [own] if own is not None else []
        while True:
            with self._queue_lock:
                batches, self._queued = first + self._queued, []
            first = []
            if not batches:
                return
            commands = [command for batch in batches for command in batch.commands]
            deadlines = [batch.deadline for batch in batches if batch.deadline is not None]
            try:
                replies = self._round_trip(commands, min(deadlines) if deadlines else None)
            except Exception as error:  # every caller in the batch learns of it
                for batch in batches:
                    batch.finish([], error)
            except BaseException:  # the sender was interrupted (a timeout, GreenletExit): not the others' affair
                interrupted = redis.ConnectionError("the round trip was interrupted; nothing is known of its commands")
                for batch in batches:
                    batch.finish([], interrupted if batch is not own else None)
                raise
            else:
                for batch, own_replies in zip(batches, _split(replies, batches), strict=True):
                    batch.finish(own_replies)
            if deadline is not None:
                return

    def _round_trip(
        self, commands: Sequence[Command], deadline: float | None, answered: int | None = None
    ) -> list[Any]:
        """Write ``commands`` and read the replies of the first ``answered`` (by default all), after those of
        the posted commands; all by ``deadline`` and SLACK."""
        if self._closed:
            raise redis.ConnectionError("the broker has stopped: its pipelined connection is closed")
        until = None if deadline is None else deadline + SLACK
        if self._posted:
            self._settle(until)
        self.round_trips += 1
        return self._connection.start(commands, len(commands) if answered is None else answered, _left(until))

    def _settle(self, until: float | None, keep: int = 0) -> None:
        """Read the replies of the posted commands, but for the last ``keep`` posts, and tell their checks;
        those lost with the connection (the kept ones too) are sent once more, and waited for (by the monotonic
        ``until``; by default each read within the socket timeout)."""
        posted = self._posted
        settled, self._posted = posted[: len(posted) - keep], posted[len(posted) - keep :]
        for index, entry in enumerate(settled):
            try:
                replies = [self._connection.finish(_left(until)) for _ in entry.commands]
            except redis.RedisError as lost:  # the connection is closed: what was not read may not have run
                log.debug("the replies to posted commands were lost (%s): sending them again", lost)
                self._posted = []
                self._send_again(posted[index:], until)
                return
            entry.check(replies)

    def _send_again(self, lost: list[_Posted], until: float | None) -> None:
        try:
            again = [command for entry in lost for command in entry.commands]
            replies = self._connection.round_trip(again, _left(until))
        except redis.RedisError as exc:
            for entry in lost:
                entry.check(exc)
            return
        for entry, own_replies in zip(lost, _split(replies, lost), strict=True):
            entry.check(own_replies)

    @property
    def connected(self) -> bool:
        return self._connection.connected

    @property
    def queued(self) -> int:
        """Callers whose commands wait for the round trip in progress to end."""
        return len(self._queued)

    def close(self, timeout: float = -1, *, for_good: bool = False) -> None:
        """Close the connection, after the round trip in progress if it ends within ``timeout`` seconds; it opens
        again on the next use, unless closed ``for_good``: then every later use raises ConnectionError."""
        taken = self._sending.acquire(timeout=timeout)
        try:
            self._closed = self._closed or for_good
            if taken and self._posted:
                self._settle(None if timeout < 0 else time.monotonic() + timeout)
            self._connection.close()
        finally:
            if taken:
                self._sending.release()


def _left(until: float | None) -> float | None:
    """The timeout of a read that must end by the monotonic ``until`` (None: the socket timeout)."""
    return None if until is None else max(0.001, until - time.monotonic())


def _split(replies: list[Any], senders: Sequence[_Batch | _Posted]) -> list[list[Any]]:
    """The replies of one write cut into each sender's share, in order."""
    shares, start = [], 0
    for sender in senders:
        shares.append(replies[start : start + len(sender.commands)])
        start += len(sender.commands)
    return shares
