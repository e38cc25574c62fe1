"""The broker's machinery in one process: its listener and inbox, the calls waiting for replies
(:mod:`.calling`), the handlers it serves (:mod:`.serving`), and its heartbeat in the registry."""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from flask_multi_redis.connection import derived_client
from flask_multi_redis.errors import BrokerUnavailable

from . import names, registry
from .calling import POOL_WAIT, WAIT_SLICE, Call
from .lane import Lane
from .listener import Listener, ListenerHealth
from .pool import HandlerPool
from .process import new_sender
from .registry import ProcessInfo
from .router import Route
from .serving import Counters, Serving
from .wire import Wire, encoded

if TYPE_CHECKING:
    from flask import Flask

    from flask_multi_redis.session import RedisSession

    from .broker import Broker

__all__ = ["Runtime"]

log = logging.getLogger(__name__)


class Runtime(Serving):
    """Everything the broker runs in this process for one app (or one dict-configured extension)."""

    def __init__(self, broker: Broker, session: RedisSession, app: Flask | None) -> None:
        self.broker = broker
        self.session = session
        self.app = app
        self.pid = os.getpid()
        self.sender = new_sender(broker.role)
        self.prefix = session.prefix
        self.inbox = names.inbox_channel(self.prefix, self.sender.id)
        self._environment = names.environment(self.prefix)
        self.started_at = time.time()
        self.counters = Counters()
        name = f"flask-redis:{self.sender.id}"  # CLIENT LIST tells which process holds a connection
        self.redis = derived_client(session, broker.connections - 2, POOL_WAIT, name)  # and the two lanes
        # The listener's own loop reconnects (not redis-py), so it knows when it was away and catches up.
        self.listener = Listener(self.redis, name=f"flask-redis-listener-{self.pid}", on_ready=self._catch_up)
        self.handlers = HandlerPool(broker.concurrency, broker.max_pending)
        self._calls: dict[str, Call] = {}
        self._costs: dict[int, float] = {}  # route -> its handler's average run time, seconds
        self._spent: collections.deque[str] = collections.deque()  # reply lists to delete with the next command
        self._direct = threading.Lock()  # held by the one call that waits on its reply list
        self._wire_routes: dict[bytes, Route] = {}  # the route of each subscribed command or request channel
        self._handlers: dict[str, Route] = {}  # handler routes by channel name, for requests sent to the inbox
        self._responders: dict[str, tuple[float, list[str]]] = {}
        self._turn = itertools.count()
        self.lane = Lane(self.redis)  # quick commands
        self._waiting = Wire(self.redis)  # private to the one call that waits (BLMOVE) on its reply list
        socket_timeout = self.redis.connection_pool.connection_kwargs["socket_timeout"]
        self._wait_slice = min(WAIT_SLICE, socket_timeout / 2)  # a blocked read must not time out first
        self._beat_now = threading.Event()
        self._registered = threading.Event()
        self._generation = 0
        self._stopping = threading.Event()
        self._heart: threading.Thread | None = None
        self._listed = False  # in the registry: from start until drain or stop
        self._registry_lock = threading.Lock()  # a heartbeat never re-lists a process that has left
        self._draining = False

    def start(self) -> Runtime:
        """Subscribe the inbox and every routed channel; start the listener and the heartbeat."""
        self.listener.subscribe(self.inbox, self._on_inbox)
        self.sync()
        self.listener.start()
        self._listed = True
        if self._heart is None:
            self._heart = threading.Thread(
                target=self._heartbeat, name=f"flask-redis-heartbeat-{self.pid}", daemon=True
            )
            self._heart.start()
        return self

    def sync(self) -> None:
        """Follow the broker's routes: subscribe channels that gained a route, renew the heartbeat now.

        Commands and requests have channels of their own, so that a publish counts only processes that answer.
        """
        for route in self.broker.routes():
            name = route.channel.name
            if route.kind == "command":
                wire = names.channel_wire(self.prefix, name)
            else:
                wire = names.request_channel(self.prefix, name)
                self._handlers[name] = route
            received_as = encoded(self.redis, wire)
            if received_as not in self._wire_routes:
                self._wire_routes[received_as] = route
                self.listener.subscribe(wire, self._on_shared)
        self._generation += 1
        self._registered.clear()
        self._beat_now.set()

    def ensure_started(self, deadline: float) -> None:
        """Start if needed and wait (until the monotonic ``deadline``) for the inbox to be subscribed."""
        if self.listener.ready:
            return
        if not self.listener.running:
            self.start()
        if not self.listener.wait_ready(max(0.0, deadline - time.monotonic())):
            raise BrokerUnavailable(f"the broker's listener is not connected to Redis ({self.session.name!r})")

    def wait_ready(self, timeout: float) -> bool:
        """True once the listener is subscribed and the process is in the registry."""
        deadline = time.monotonic() + timeout
        if not self.listener.wait_ready(timeout):
            return False
        return self._registered.wait(max(0.0, deadline - time.monotonic()))

    def drain(self, grace: float, on_closed: Callable[[], None] | None = None) -> bool:
        """Stop taking work and let the handlers in flight finish within ``grace`` seconds; True when they did.

        The process leaves the registry at once; a request that still reaches it is answered ``ShuttingDown``
        (never started), and the caller sends it to another process. It stays subscribed until it stops: a
        message published just before an UNSUBSCRIBE would be counted as received, and then lost.
        """
        self._draining = True
        with contextlib.suppress(redis.RedisError):
            self._unregister()
        if on_closed is not None:
            on_closed()
        self.handlers.run_queued_here()  # each refuses: not started, its caller goes elsewhere at once
        return self.handlers.join(grace)

    def stop(self, timeout: float = 5.0) -> bool:
        """Leave the registry, stop listening, and let running handlers (and a call waiting on its reply list)
        finish, all within ``timeout``; True when everything ended in time. When Redis does not answer,
        leaving the registry may take one socket timeout more."""
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        self._stopping.set()
        self._beat_now.set()
        if self._heart is not None:
            self._heart.join(left())
        with contextlib.suppress(redis.RedisError):
            self._flush_spent()
            self._unregister()
        stopped = self.listener.stop(left())
        stopped = self.handlers.join(left()) and stopped
        self.lane.close(left(), for_good=True)
        if self._direct.acquire(timeout=left()):  # else the call still waiting closes its connection itself
            try:
                self._waiting.close()
            finally:
                self._direct.release()
        else:
            stopped = False
        self.redis.connection_pool.disconnect()
        return stopped

    def health(self) -> ListenerHealth:
        return self.listener.health()

    def _heartbeat(self) -> None:
        self.listener.wait_ready(self.broker.heartbeat_interval)
        while not self._stopping.is_set():
            try:
                self._beat_now.clear()
                generation = self._generation
                self._flush_spent()
                self._close_idle_waiting()
                with self._registry_lock:
                    if self._listed:
                        self._register()
                if generation == self._generation:
                    self._registered.set()
            except Exception:
                log.exception("heartbeat of %s failed; next try in %.1f s", self.sender, self.broker.heartbeat_interval)
            self._beat_now.wait(self.broker.heartbeat_interval)

    def info(self) -> ProcessInfo:
        """This process as the registry shows it."""
        draining = self._draining
        return ProcessInfo(
            sender=self.sender,
            inbox=self.inbox,
            handlers=() if draining else self.broker.channel_names("handler"),
            commands=() if draining else self.broker.channel_names("command"),
            started_at=self.started_at,
            handled=self.counters.handled,
            failed=self.counters.failed,
        )

    def _register(self) -> None:
        registry.register(self.lane, self.prefix, self.info(), int(self.broker.heartbeat_interval * 3000))

    def _unregister(self) -> None:
        handlers = self.broker.channel_names("handler")
        with self._registry_lock:
            if self._listed:
                self._listed = False
                registry.unregister(self.lane, self.prefix, self.sender.id, handlers)

    def _close_idle_waiting(self) -> None:
        """Close the reply-wait connection when no call has used it for a heartbeat: an idle process holds two."""
        idle = time.monotonic() - self._waiting.last_used
        if idle > self.broker.heartbeat_interval and self._direct.acquire(blocking=False):
            try:
                self._waiting.close()
            finally:
                self._direct.release()
