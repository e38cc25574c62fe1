"""The listener: one pub/sub connection per process that reads every subscription of that process.

It runs in a daemon thread, which is a greenlet when gevent has patched the process. A supervising loop
catches everything, logs it at ERROR, and reconnects with capped exponential backoff, resubscribing all
channels; a PING after a silence notices a peer that stopped answering (a half-open connection). Callbacks
that raise are logged and counted, never fatal.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import redis

from flask_multi_redis.connection import failure_reason
from flask_multi_redis.direct import SubscriberConnection

from . import commands

__all__ = ["Callback", "Listener", "ListenerHealth", "encoded_name"]

log = logging.getLogger(__name__)

#: Receives (channel, payload) for every message on a channel it was subscribed with (the prefixed name).
Callback = Callable[[bytes, bytes], None]


@dataclass(frozen=True)
class ListenerHealth:
    """A snapshot of the listener's state, for health checks and discovery."""

    running: bool
    connected: bool
    subscriptions: tuple[str, ...]
    last_message_at: float | None
    received: int
    failed: int
    reconnects: int
    last_error: str | None = None  # why it is not connected, while it is not


class Listener:
    """Reads one pub/sub connection and calls the callback registered for each message's channel.

    :param client: the redis client whose settings the pub/sub connection is made with.
    :param silence: seconds without traffic after which a PING is sent.
    :param ping_timeout: seconds to wait for its answer; without one the connection is dead (a peer gone
        without a FIN or RST, a black hole) and is rebuilt. So a dead peer is noticed within ``silence`` +
        ``ping_timeout`` (5 + 2 s by default) and a tick (a quarter of a second).
    :param backoff_cap: the longest wait, in seconds, between two reconnection attempts (jittered): short, so a
        listener is back within about half a second of a failover (a try costs Redis one connection).
    :param primary_check: how often (seconds) a connection that follows a primary (behind sentinels, or a
        cluster slot's) compares its server with where the primary was last learnt to be, and, behind
        sentinels, has them asked anew in the background: a primary demoted while its connections stay open
        sends a subscriber nothing and no error, so it must move by itself.
    :param address: how the server is named in log lines (password hidden).
    :param on_ready: called on the listener's thread each time it is connected with every subscription
        confirmed, after a reconnect too: messages published while it was away are lost (a Redis fact), so
        this is where a user catches up on them.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        name: str = "flask-redis-listener",
        address: str = "Redis",
        silence: float = 5.0,
        ping_timeout: float = 2.0,
        backoff_cap: float = 0.5,
        primary_check: float = 1.0,
        verbs: commands.Verbs = commands.CLASSIC,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.address = address
        self.silence = silence
        self.ping_timeout = ping_timeout
        self.backoff_cap = backoff_cap
        self.primary_check = primary_check
        self.verbs = verbs
        self.on_ready = on_ready
        self._callbacks: dict[bytes, Callback] = {}
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._draining = threading.Event()  # asked to unsubscribe and read on until the server confirms
        self._drained = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: SubscriberConnection | None = None  # while it reads one
        self._connected = False
        self._connected_once = False
        self._last_error: Exception | None = None
        self._outage_since: float | None = None  # the first failure of the outage in progress
        self._served = False  # connected with its subscriptions confirmed since the last failure
        self._last_message_at: float | None = None
        self._received = 0
        self._failed = 0
        self._reconnects = 0

    # --- public API, safe from any thread -------------------------------------------------------------------

    def subscribe(self, channel: str | bytes, callback: Callback) -> None:
        """Deliver messages of ``channel`` (its prefixed name) to ``callback``; takes effect on the listener's
        own thread."""
        key = encoded_name(self.client, channel)
        with self._lock:
            self._callbacks[key] = callback
            self._changed.set()  # before clearing ready, so that the loop cannot report ready in between
            self._ready.clear()

    def unsubscribe(self, channel: str | bytes) -> None:
        """Stop delivering messages of ``channel`` (its prefixed name)."""
        key = encoded_name(self.client, channel)
        with self._lock:
            self._callbacks.pop(key, None)
        self._changed.set()

    def start(self) -> Listener:
        """Start reading, once; later calls do nothing while it runs."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return self
            self._stopping.clear()
            self._draining.clear()
            self._drained.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Unsubscribe from everything, deliver what the server sent before it confirmed (a message it counted
        as received must reach its callback, not be lost with the connection), then stop reading and close
        the connection; True when the listener has ended within ``timeout``."""
        thread = self._thread
        if thread is None:
            return True
        deadline = time.monotonic() + timeout
        if self._connected and thread.is_alive():
            self._draining.set()
            self._drained.wait(timeout)
        self._stopping.set()
        self._changed.set()
        thread.join(max(0.0, deadline - time.monotonic()))
        return not thread.is_alive()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until connected with every current subscription confirmed by the server."""
        return self._ready.wait(timeout)

    @property
    def ready(self) -> bool:
        """Connected with every current subscription confirmed (see :meth:`wait_ready`)."""
        return self._ready.is_set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def connected_once(self) -> bool:
        """Whether the listener has ever been connected with its subscriptions confirmed."""
        return self._connected_once

    @property
    def last_error(self) -> Exception | None:
        """Why the listener's connection last failed, while it is not connected again."""
        return None if self._connected else self._last_error

    def health(self) -> ListenerHealth:
        with self._lock:
            channels = tuple(sorted(key.decode(errors="replace") for key in self._callbacks))
        return ListenerHealth(
            running=self.running,
            connected=self._connected,
            subscriptions=channels,
            last_message_at=self._last_message_at,
            received=self._received,
            failed=self._failed,
            reconnects=self._reconnects,
            last_error=None if self.last_error is None else failure_reason(self.last_error),
        )

    # --- the listener's own thread --------------------------------------------------------------------------

    def backlog(self) -> bool:
        """Whether more has arrived behind the message being delivered: for a callback, on the listener's thread
        (one look at the reader's buffer and the socket, which does not wait)."""
        connection = self._connection
        return connection is not None and connection.readable()

    def _run(self) -> None:
        delay = 0.05
        while not self._stopping.is_set() and not self._drained.is_set():
            try:
                self._serve()
            except Exception as exc:
                self._failed_with(exc)
            finally:
                self._connected = False
                self._ready.clear()
            if self._stopping.is_set() or self._drained.is_set():
                break
            if self._served:
                delay = 0.05  # it had connected since the last failure: this is a new outage
                self._served = False
            self._stopping.wait(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, so processes do not retry in step
            delay = min(self.backoff_cap, delay * 2)
            self._reconnects += 1
        log.info("listener %s stopped", self.name)

    def _failed_with(self, error: Exception) -> None:
        """One line at ERROR for each outage, with its cause; the tracebacks of every try at DEBUG."""
        self._last_error = error
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            what = "lost its connection to" if self._connected_once else "cannot connect to"
            log.error(
                "listener %s %s %s: %s; reconnecting, with pauses of up to %.0f s",
                self.name,
                what,
                self.address,
                failure_reason(error),
                self.backoff_cap,
            )
        log.debug("listener %s: the connection to %s failed", self.name, self.address, exc_info=error)

    def _serve(self) -> None:
        self._connection = connection = SubscriberConnection(self.client)
        try:
            self._read(connection)
        finally:
            self._connection = None
            connection.close()

    def _read(self, connection: SubscriberConnection) -> None:
        subscribed: set[bytes] = set()
        confirmed: set[bytes] = set()
        last_traffic = time.monotonic()
        ping_sent: float | None = None
        checked = time.monotonic()
        tick = min(0.25, self.silence)
        unsubscribing = False
        leaving: Counter[bytes] = Counter()  # channels we asked to leave, until the server confirms
        verbs = self.verbs
        while not self._stopping.is_set():
            if self._draining.is_set() and not unsubscribing:
                connection.send([commands.unsubscribe((), verbs)])  # from every channel; nothing comes after it
                unsubscribing = True
            elif (self._changed.is_set() or not subscribed) and not unsubscribing:
                self._changed.clear()
                with self._lock:
                    wanted = set(self._callbacks)
                if wanted - subscribed:
                    connection.send([commands.subscribe(wanted - subscribed, verbs)])
                if subscribed - wanted:
                    connection.send([commands.unsubscribe(subscribed - wanted, verbs)])
                    leaving.update(subscribed - wanted)
                    confirmed &= wanted
                subscribed = wanted
                self._check_ready(subscribed, confirmed)
            if not subscribed and not unsubscribing:
                self._changed.wait(0.25)
                continue
            primary = connection.primary
            if primary is not None and time.monotonic() - checked > self.primary_check:
                checked = time.monotonic()  # also under load: a demoted primary may still pass messages on
                if primary.moved():  # as this process last learnt it, by any of its connections
                    raise redis.ConnectionError("the primary has moved: the sentinels or the slot map say so")
                if primary.watch:
                    primary.refresh()  # asks the sentinels in the background: the next check knows
            message = connection.next_message(tick)
            if message is None:
                now = time.monotonic()
                if connection.heard > last_traffic:  # part of a message came: the peer is not silent
                    last_traffic, ping_sent = connection.heard, None
                if ping_sent is None and now - last_traffic > self.silence:
                    connection.send([commands.ping()])
                    ping_sent = now
                elif ping_sent is not None and now - ping_sent > self.ping_timeout:
                    raise redis.ConnectionError(f"no answer to PING within {self.ping_timeout} s: the peer is silent")
                continue
            last_traffic, ping_sent = time.monotonic(), None
            if isinstance(message, redis.RedisError):
                if primary is not None:
                    primary.refresh()  # MOVED, say: learn where the slot is before the next connect
                raise message  # e.g. no permission to subscribe: reconnect with backoff, and say why
            if not isinstance(message, list) or len(message) < 3:
                continue  # the answer to a PING
            kind = message[0]
            if kind == verbs.message:
                self._dispatch(message[1], message[2])
            elif kind == verbs.subscribed:
                confirmed.add(message[1])
                self._check_ready(subscribed, confirmed)
            elif kind == verbs.unsubscribed and unsubscribing and message[2] == 0:
                self._drained.set()  # every message sent to us before this one has been delivered
                return
            elif kind == verbs.unsubscribed and not unsubscribing:
                if not leaving[message[1]]:  # the server dropped it: a shard channel whose slot moved away
                    if primary is not None:
                        primary.refresh()
                    raise redis.ConnectionError(f"the server unsubscribed {message[1]!r}: its slot moved")
                leaving[message[1]] -= 1

    def _check_ready(self, subscribed: set[bytes], confirmed: set[bytes]) -> None:
        """Report ready once the server has confirmed every channel we want (and no change is pending)."""
        if not subscribed or not confirmed >= subscribed or self._changed.is_set():
            return
        if self._connected:
            self._ready.set()
            return
        if self._outage_since is not None:
            log.warning(
                "listener %s: connected to %s again after %.1f s", self.name, self.address, self._since_outage()
            )
            self._outage_since = None
        log.info("listener %s subscribed to %d channel(s)", self.name, len(subscribed))
        self._connected = self._connected_once = self._served = True
        if self.on_ready is not None:
            try:
                self.on_ready()
            except Exception:
                log.exception("listener %s: on_ready raised", self.name)
        self._ready.set()

    def _since_outage(self) -> float:
        return 0.0 if self._outage_since is None else time.monotonic() - self._outage_since

    def _dispatch(self, channel: bytes, data: bytes) -> None:
        self._received += 1
        self._last_message_at = time.time()
        callback = self._callbacks.get(channel)  # one lookup in a dict: atomic, no lock needed
        if callback is None:
            return  # unsubscribed while the message was on its way
        try:
            callback(channel, data)
        except Exception:
            self._failed += 1
            log.exception("listener %s: callback for channel %s raised", self.name, channel.decode(errors="replace"))


def encoded_name(client: redis.Redis, name: str | bytes) -> bytes:
    """A channel name as Redis has it: a str in ``client``'s encoding, as its commands send it."""
    if isinstance(name, bytes):
        return name
    return client.get_encoder().encode(name)  # type: ignore[no-any-return,no-untyped-call]
