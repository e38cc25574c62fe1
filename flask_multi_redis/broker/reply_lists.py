"""Reply lists: every answer is kept in a list named after its request until the request's deadline.

A caller whose pub/sub connection was away reads the list; one that got its reply deletes the list with its next
command (:class:`DeferredUnlink`). And one call at a time per process waits on its own list instead of its inbox
(:class:`ReplyListWait`): the sequential caller's common case, with no hand-over from the listener's thread.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time

import redis

from flask_multi_redis.connection import CONNECTION_LOST, describe
from flask_multi_redis.direct import DirectConnection
from flask_multi_redis.errors import BrokerUnavailable

from . import commands
from .envelope import Envelope
from .intake import Intake
from .pipeline import SLACK, PipelinedConnection

__all__ = ["MARKER", "MARKER_TTL_MS", "WAIT_SLICE", "DeferredUnlink", "ReplyListWait"]

log = logging.getLogger(__name__)

#: The longest single wait of a caller on its reply list, in seconds (at most half the socket timeout).
WAIT_SLICE = 2.0
#: What a waiting caller pushes onto its own reply list to end its wait when its request reached nobody.
MARKER = b""
#: How long that marker may stay in the list, in milliseconds (the caller deletes it).
MARKER_TTL_MS = 60_000


class DeferredUnlink:
    """Reply lists of finished calls, deleted with the next command that goes out (or by the heartbeat)."""

    def __init__(self) -> None:
        self._keys: collections.deque[str] = collections.deque()

    def add(self, key: str) -> None:
        self._keys.append(key)

    def take(self) -> list[str]:
        """The keys to delete now, taken out one by one: a key another thread adds meanwhile is not lost."""
        taken: list[str] = []
        keys = self._keys
        while keys:
            try:
                taken.append(keys.popleft())
            except IndexError:  # another thread took the last one
                break
        return taken

    def not_published(self, channel: str, keys: list[str], error: Exception) -> BrokerUnavailable:
        """The error for a PUBLISH that failed; the keys its write was to delete wait for a later one."""
        self._keys.extend(keys)
        return BrokerUnavailable(f"could not publish on {channel!r}: {describe(error)}")

    def flush(self, pipelined: PipelinedConnection, deadline: float | None = None) -> None:
        """Delete the waiting keys now (by the monotonic ``deadline``, if any: see :meth:`.PipelinedConnection.run`)."""
        keys = self.take()
        if keys:
            try:
                pipelined.run(commands.unlink(keys), deadline=deadline)
            except BaseException:
                self._keys.extend(keys)  # next time
                raise


class ReplyListWait:
    """The one call at a time in a process that waits on its own reply list, on a connection of its own.

    Its request goes out without a reply_to, so the answer is only kept in the list, and the PUBLISH and the wait
    on the list (BLMOVE) go in one write: one round trip fewer than subscribing, and no hand-over from the
    listener's thread. When nobody received it, a marker pushed onto the list ends the wait at once.

    :param wait_slice: the longest single BLMOVE, in seconds: below the connection's socket timeout.
    """

    def __init__(
        self,
        client: redis.Redis,
        pipelined: PipelinedConnection,
        unlinks: DeferredUnlink,
        intake: Intake,
        wait_slice: float,
        verbs: commands.Verbs = commands.CLASSIC,
    ) -> None:
        self._connection = DirectConnection(client)
        self._verbs = verbs
        self._pipelined = pipelined
        self._unlinks = unlinks
        self._intake = intake
        self._wait_slice = wait_slice
        self._taken = threading.Lock()
        self._stopping = False

    def take(self) -> bool:
        """Become the one call that waits on its reply list; False when another one is. :meth:`release` after."""
        return self._taken.acquire(blocking=False)

    def release(self) -> None:
        if self._stopping:
            self._connection.close()  # the runtime stopped meanwhile and left that to this call
        self._taken.release()

    @property
    def busy(self) -> bool:
        return self._taken.locked()

    @property
    def connected(self) -> bool:
        return self._connection.connected

    def publish(self, channel: str, data: bytes, key: str, deadline: float, marked: bool) -> bool:
        """PUBLISH ``data`` and start waiting on the reply list ``key``; False when nobody received it (and the
        wait has ended). ``marked``: an earlier attempt may have left its marker in the list."""
        unlinked = self._unlinks.take()
        if marked:
            unlinked.append(key)
        sent = commands.publish_and_wait(unlinked, channel, data, key, self._wait_for(deadline), self._verbs)
        try:
            replies = self._connection.start(sent, len(sent) - 1, _until(deadline))  # a failed UNLINK: no harm
            receivers = commands.receivers(replies[-4:])
        except redis.RedisError as exc:
            raise self._unlinks.not_published(channel, unlinked, exc) from exc
        if receivers:
            return True
        self._end_wait(key, deadline)
        return False

    def wait(self, call_id: str, channel: str, key: str, deadline: float, started: bool) -> Envelope | None:
        """The answer to ``call_id`` on ``channel`` once it is in the list ``key``; None at the monotonic
        ``deadline``. Anything else in the list (another call's answer, one on another channel) is taken out.

        ``started``: :meth:`publish` sent the first wait. A lost connection loses nothing: the wait starts again
        on a new one, until the deadline. No read waits past the deadline by more than SLACK, however silent
        the server or the network.
        """
        connection = self._connection
        removals: list[tuple[object, ...]] = []
        pause = 0.0  # after a lost connection: 0.05 s, doubling up to 1 s
        while True:
            try:
                if not started:
                    if deadline - time.monotonic() <= 0:
                        return None
                    waiting = commands.wait_on_list(key, self._wait_for(deadline))
                    connection.start([*removals, waiting], len(removals), _until(deadline))
                    removals = []
                started = False
                found = connection.finish(self._wait_for(deadline) + SLACK)
            except CONNECTION_LOST as exc:  # closed: the wait starts again on a new connection
                if not pause:
                    log.warning("waiting for the reply on %s: %s; retrying until the deadline", key, describe(exc))
                pause = min(1.0, max(0.05, 2 * pause), max(0.0, deadline - time.monotonic()))
                time.sleep(pause)
                continue
            if isinstance(found, redis.RedisError):  # e.g. OOM, LOADING, READONLY: the wait itself was refused
                raise BrokerUnavailable(f"could not wait for the reply on {key!r}: {describe(found)}") from found
            if found == MARKER:  # pushed late by an earlier attempt, after that attempt's UNLINK
                removals = [commands.discard(key, MARKER, count=0)]
            elif isinstance(found, bytes):
                envelope = self._intake.read(key.encode(), found)
                if envelope is not None and _answers(envelope, call_id, channel):
                    return envelope
                removals = [commands.discard(key, found)]  # not our answer: take it out, or BLMOVE returns it again

    def close_if_idle(self, idle_for: float) -> None:
        """Close the connection when no call has used it for ``idle_for`` seconds: an idle process holds two."""
        idle = time.monotonic() - self._connection.last_used
        if idle > idle_for and self._taken.acquire(blocking=False):
            try:
                self._connection.close()
            finally:
                self._taken.release()

    def close(self, timeout: float) -> bool:
        """Close for good, once the call waiting (if any) is done within ``timeout``; False when it is not: it
        closes the connection itself when it ends."""
        self._stopping = True
        if not self._taken.acquire(timeout=timeout):
            return False
        try:
            self._connection.close()
        finally:
            self._taken.release()
        return True

    def _end_wait(self, key: str, deadline: float) -> None:
        """End the wait on ``key`` of a request that reached nobody: push the marker, read the wait's reply (the
        marker, or nil when its time ran out first; the next attempt deletes the list either way)."""
        try:
            self._pipelined.run(commands.keep(key, MARKER, MARKER_TTL_MS), deadline=deadline)
        except redis.RedisError:
            self._connection.close()  # the wait is still on: drop the connection with it
            return
        with contextlib.suppress(redis.RedisError):  # the connection starts afresh before its next use
            self._connection.finish(_until(deadline))

    def _wait_for(self, deadline: float) -> float:
        """Seconds for the next wait on the reply list: until the deadline, at most one slice."""
        return max(0.01, min(deadline - time.monotonic(), self._wait_slice))


def _answers(envelope: Envelope, call_id: str, channel: str) -> bool:
    return envelope.kind in ("reply", "error") and envelope.id == call_id and envelope.channel == channel


def _until(deadline: float) -> float:
    """A read's timeout that ends SLACK after the monotonic ``deadline``."""
    return max(0.0, deadline - time.monotonic()) + SLACK
