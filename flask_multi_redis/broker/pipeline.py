"""A pipelined connection: one connection for the broker's short commands, shared by every thread or greenlet
of the process, with automatic pipelining.

It writes on a :class:`~flask_multi_redis.direct.DirectConnection` of its own. Callers queue their commands;
whoever finds the connection free sends everything queued in one write and reads the replies in order, so calls
made at the same time share round trips and a process needs one connection however many calls it has in flight.
A blocking command (BLMOVE with a timeout) would hold up everybody behind it: the one call that waits that way
has a connection of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from flask_multi_redis.direct import Command, DirectConnection

__all__ = ["PipelinedConnection"]


@dataclass
class _Batch:
    """One caller's commands and, once sent, their replies (or the error that stopped them)."""

    commands: Sequence[Command]
    replies: list[Any] = field(default_factory=list)
    error: BaseException | None = None
    done: threading.Event | None = None  # only for a caller that waits while another one sends

    def outcome(self) -> list[Any]:
        """The replies, once sent; the error that stopped them is raised."""
        if self.error is not None:
            raise self.error
        return self.replies


class PipelinedConnection:
    """Runs commands on a connection of its own, made like the ``client``'s, pipelining concurrent callers."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self.round_trips = 0  # writes so far, each with every command queued at the time
        self._queued: list[_Batch] = []
        self._queue_lock = threading.Lock()
        self._sending = threading.Lock()
        self._connection = DirectConnection(client)
        self._closed = False

    def execute(self, *args: Any) -> Any:
        """One command; its raw reply (no redis-py response callbacks)."""
        return self.run([args])[-1]

    def run(self, commands: Sequence[Command], *, raise_errors: bool = True) -> list[Any]:
        """Several commands sent together; their raw replies, in order. An error reply raises the exception
        redis-py would, unless ``raise_errors`` is false: then it is returned among the replies."""
        if self._sending.acquire(blocking=False):
            replies = self._send_alone(commands) if not self._queued else self._send_with_queued(commands)
        else:
            replies = self._wait_for_sender(commands)
        if raise_errors:
            for reply in replies:
                if isinstance(reply, redis.RedisError):
                    raise reply
        return replies

    def _send_alone(self, commands: Sequence[Command]) -> list[Any]:
        """With the connection taken and nothing queued (the common case): one round trip of our own."""
        try:
            replies = self._round_trip(commands)
        except Exception:
            self._hand_over()
            raise
        except BaseException:  # interrupted: let go at once
            self._sending.release()
            raise
        self._hand_over()
        return replies

    def _send_with_queued(self, commands: Sequence[Command]) -> list[Any]:
        batch = _Batch(commands)
        self._send_as_sender(batch)
        return batch.outcome()

    def _wait_for_sender(self, commands: Sequence[Command]) -> list[Any]:
        """Queue our commands for whoever sends, or become the sender ourselves when the connection comes free."""
        done = threading.Event()
        batch = _Batch(commands, done=done)
        with self._queue_lock:
            self._queued.append(batch)
        while not done.is_set():
            if self._sending.acquire(blocking=False):
                self._send_as_sender(None)
            else:
                done.wait(0.05)  # the sender takes our batch (see _send_queued); the timeout is a safety net
        return batch.outcome()

    def _hand_over(self) -> None:
        """Let go of the connection; a batch queued meanwhile, whose caller found the connection taken, waits
        for a sender: be it."""
        self._sending.release()
        while self._queued and self._sending.acquire(blocking=False):
            try:
                self._send_queued(None)
            finally:
                self._sending.release()

    def _send_as_sender(self, own: _Batch | None) -> None:
        """With the connection taken: send ``own`` and everything queued, then let go of it."""
        try:
            self._send_queued(own)
        except BaseException:
            self._sending.release()
            raise
        self._hand_over()

    def _send_queued(self, own: _Batch | None) -> None:
        first = [own] if own is not None else []
        while True:
            with self._queue_lock:
                batches, self._queued = first + self._queued, []
            first = []
            if not batches:
                return
            commands = [command for batch in batches for command in batch.commands]
            try:
                replies = self._round_trip(commands)
            except Exception as error:  # every caller in the batch learns of it
                for batch in batches:
                    batch.error = error
                    if batch.done is not None:
                        batch.done.set()
                continue
            except BaseException:  # the sender was interrupted (a timeout, GreenletExit): not the others' affair
                interrupted = redis.ConnectionError("the round trip was interrupted; nothing is known of its commands")
                for batch in batches:
                    batch.error = interrupted if batch is not own else None
                    if batch.done is not None:
                        batch.done.set()
                raise
            start = 0
            for batch in batches:
                batch.replies = replies[start : start + len(batch.commands)]
                start += len(batch.commands)
                if batch.done is not None:
                    batch.done.set()

    def _round_trip(self, commands: Sequence[Command]) -> list[Any]:
        if self._closed:
            raise redis.ConnectionError("the broker has stopped: its pipelined connection is closed")
        self.round_trips += 1
        return self._connection.round_trip(commands)

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
            self._connection.close()
        finally:
            if taken:
                self._sending.release()
