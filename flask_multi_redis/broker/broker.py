"""Broker: what app code uses (``ext.broker``): the route decorators, publish, broadcast and request."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload
from weakref import WeakKeyDictionary, WeakSet

import redis

from flask_multi_redis.cluster import ClusterSession
from flask_multi_redis.connection import failure_reason, shard_session
from flask_multi_redis.errors import (
    BrokerUnavailable,
    ConfigurationError,
    NoResponders,
    RequestTimeout,
    ShuttingDown,
)
from flask_multi_redis.forks import ProcessLock
from flask_multi_redis.session import RedisSession

from . import commands
from .caller import RECONNECT_GRACE, new_id
from .channel import Channel
from .health import BrokerHealth
from .instruments import Instrument, Instruments
from .process import after_fork, when_to_start
from .registry import ProcessInfo
from .reply import Reply, reply_from
from .router import Router
from .runtime import Runtime
from .settings import MAX_MESSAGE_SIZE, BrokerSettings

if TYPE_CHECKING:
    from flask import Flask

    from flask_multi_redis.extension import RedisExtension

__all__ = ["Broker", "Reply"]

Req = TypeVar("Req")
Rep = TypeVar("Rep")

_runtime_lock = ProcessLock()  # guards creation; on a cluster it is held while the shard is found (forks.py)


class Broker(Router):
    """Commands, handlers and calls over one Redis database of a Flask extension; see ``ext.broker``.

    It starts listening by itself in each process that serves once it has routes and an app (each gunicorn
    worker, also with ``--preload``; not the master, not the Flask reloader's parent, not other ``flask``
    commands); :meth:`start` starts it explicitly, for example when it is configured from a dict. Each process
    has a runtime of its own per app (and one for the extension's own configuration).

    The attributes below are read when a process's runtime is made: set them before ``init_app``, or use
    :meth:`configure`.

    :param role: how this process shows in the registry (``web``, ``worker``).
    :param database: the database (name or index) whose server carries the messages; default: the first one.
    :param concurrency: handlers that may run at once in this process.
    :param connections: command connections the broker may hold in this process (at least 3): a pipelined one
        for short commands, one for the call waiting on its reply list, and a pool for the rest (calls queue for
        one beyond that); besides its one pub/sub connection. In-flight calls do not each need a connection.
    :param max_pending: received messages that may wait for a handler; beyond it requests get ``Overloaded``.
    :param max_message_size: the largest envelope sent or accepted, in bytes.
    :param timeout: the default timeout of :meth:`request` and gathered broadcasts, in seconds.
    :param heartbeat_interval: seconds between two registry heartbeats (entries live three intervals).
    :param registry_cache: seconds a caller trusts its copy of a channel's responders.
    :param inline_below: a handler whose average run time is below this many seconds runs on the listener's
        thread when nothing else runs, saving the hand-over to a handler thread; one below five times as much
        does too while no other message waits behind its own; 0 never does.
    :param max_timeout: the longest timeout a call may have, in seconds; claims and kept answers never outlive
        it by more than a second, whatever deadline a request carries.
    :param error_messages: send callers the text of a handler's exception (``RemoteError.remote_message``);
        False sends only its type, so that what an exception's text holds stays in this process's log.
    """

    def __init__(
        self,
        extension: RedisExtension,
        *,
        role: str = "web",
        database: str | int | None = None,
        concurrency: int = 8,
        connections: int = 4,
        max_pending: int = 1000,
        max_message_size: int = MAX_MESSAGE_SIZE,
        timeout: float = 30.0,
        heartbeat_interval: float = 2.0,
        registry_cache: float = 1.0,
        inline_below: float = 0.0002,
        max_timeout: float = 300.0,
        error_messages: bool = True,
    ) -> None:
        super().__init__()
        self.extension = extension
        self.database = database
        self.timeout = timeout
        self.role = role
        self.concurrency = concurrency
        self.connections = connections
        self.max_pending = max_pending
        self.max_message_size = max_message_size
        self.heartbeat_interval = heartbeat_interval
        self.registry_cache = registry_cache
        self.inline_below = inline_below
        self.max_timeout = max_timeout
        self.error_messages = error_messages
        self.settings()  # refuse bad values now
        self._runtimes: WeakKeyDictionary[Flask, Runtime] = WeakKeyDictionary()
        self._own_runtime: Runtime | None = None  # for the extension's own configuration (a dict, URL, model)
        self._deferred: WeakSet[Flask] = WeakSet()  # apps whose runtime starts in each forked child
        self.instruments = Instruments()  #: what sees its calls and handler runs: see :meth:`instrument`

    # --- lifecycle ------------------------------------------------------------------------------------------

    def settings(self) -> BrokerSettings:
        """The settings a runtime made now gets, from the attributes."""
        names = [field.name for field in dataclasses.fields(BrokerSettings)]
        return BrokerSettings(**{name: getattr(self, name) for name in names})

    def configure(self, **settings: Any) -> None:
        """Change settings (``role``, ``concurrency``, ``heartbeat_interval``, any attribute of
        :class:`~.settings.BrokerSettings`). The runtimes this process made with other settings (for any app)
        are stopped: the next use starts one with these.

        :raises TypeError: a name that is no setting. :raises ValueError: a value that is refused.
        """
        names = {field.name for field in dataclasses.fields(BrokerSettings)}
        unknown = sorted(set(settings) - names)
        if unknown:
            raise TypeError(f"not a broker setting: {', '.join(unknown)}")
        wanted = dataclasses.replace(self.settings(), **settings)  # refuses bad values before any is set
        for name, value in settings.items():
            setattr(self, name, value)
        for app in [None, *self.extension.apps]:
            runtime = self._current(app)
            if runtime is not None and runtime.settings != wanted:
                runtime.stop()
                self._forget(app, runtime)

    def runtime(self) -> Runtime:
        """This process's broker runtime for the current app (or the extension's own configuration)."""
        return self._runtime_for(self.extension.context_app())

    def start(self, timeout: float | None = None) -> Runtime:
        """Start listening now; with ``timeout``, also wait until subscribed and registered.

        :raises BrokerUnavailable: not ready within ``timeout``, saying where Redis is and why (at once when
            the listener cannot connect at all: a refused connection, a wrong password, a certificate that does
            not verify).
        """
        runtime = self.runtime().start()
        if timeout is not None:
            runtime.ensure_ready(time.monotonic() + timeout)
        return runtime

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop listening in this process; True when everything ended within ``timeout``. Using the broker
        afterwards starts it again, afresh.

        :raises ValueError: ``timeout`` is negative or NaN (an infinite one waits as long as it takes).
        """
        if not timeout >= 0:  # NaN too
            raise ValueError(f"timeout must be 0 or more seconds, not {timeout!r}")
        timeout = min(timeout, threading.TIMEOUT_MAX / 4)  # what a thread's join takes: inf would overflow it
        app = self.extension.context_app()
        runtime = self._current(app)
        if runtime is None:
            return True
        try:  # a call made meanwhile is refused (BrokerUnavailable) rather than starting it again
            return runtime.stop(timeout)
        finally:
            self._forget(app, runtime)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until this process's listener is subscribed and, when it serves, registered."""
        return self.runtime().wait_ready(timeout)

    def health(self) -> BrokerHealth:
        return self.runtime().health()

    def bind(self, app: Flask) -> None:
        """Called by the extension's ``init_app``: start serving for that app if this process should."""
        if self.routes():
            self._autostart(app)

    # --- messaging ------------------------------------------------------------------------------------------

    def publish(self, channel: Channel[Req, Any], message: Req) -> int:
        """Send ``message`` to every process listening on ``channel``; the number that received it."""
        return self.broadcast(channel, message)

    @overload
    def broadcast(
        self, channel: Channel[Req, Rep], message: Req, gather: Literal[False] = ..., timeout: float | None = ...
    ) -> int: ...
    @overload
    def broadcast(
        self, channel: Channel[Req, Rep], message: Req, gather: Literal[True], timeout: float | None = ...
    ) -> list[Reply[Rep]]: ...
    def broadcast(
        self, channel: Channel[Req, Rep], message: Req, gather: bool = False, timeout: float | None = None
    ) -> int | list[Reply[Rep]]:
        """Run ``channel``'s command in every listening process.

        :returns: the number of processes that received it; with ``gather=True`` one :class:`Reply` per
            receiving process, as soon as all have answered or at the ``timeout`` (those that did not answer
            are reported, not waited for). A gather that reaches nobody is sent again for up to half a second
            (listeners may be resubscribing after a lost connection) before it returns no replies.
        """
        if not self.instruments.active():
            return self._broadcast(channel, message, gather, timeout)
        with self.instruments.call("gather" if gather else "broadcast", channel.name):
            return self._broadcast(channel, message, gather, timeout)

    def _broadcast(
        self, channel: Channel[Req, Rep], message: Req, gather: bool, timeout: float | None
    ) -> int | list[Reply[Rep]]:
        caller = self.runtime().caller
        body = channel.dump_request(message)
        if not gather:  # with a deadline all the same: a copy published again later runs nothing
            data = caller.envelope("command", new_id(), channel, body, self.max_timeout, False)
            return caller.broadcast(channel, data)
        timeout = self._timeout(timeout)
        deadline = time.monotonic() + timeout
        self.runtime().ensure_started(deadline)
        with caller.call(channel, expected=1 << 30) as call:
            remaining = deadline - time.monotonic()
            data = caller.envelope("command", call.id, channel, body, remaining, True)
            receivers = caller.broadcast(channel, data, deadline)
            grace_until = time.monotonic() + RECONNECT_GRACE
            while not receivers and time.monotonic() < min(grace_until, deadline):  # resubscribing, maybe
                time.sleep(0.05)  # nobody received the first: sending it again runs nothing twice
                receivers = caller.broadcast(channel, data, deadline)
            call.expect(receivers)
            envelopes = caller.wait(call, deadline) if receivers else []
        replies = [reply_from(channel, envelope) for envelope in envelopes[:receivers]]
        missing = RequestTimeout(f"no reply on {channel.name!r} within {timeout} s")
        return replies + [Reply(None, False, error=missing) for _ in range(receivers - len(replies))]

    def request(self, channel: Channel[Req, Rep], message: Req, timeout: float | None = None) -> Rep:
        """Have exactly one process that serves ``channel`` handle ``message``; its reply, validated.

        :raises NoResponders: nobody serves the channel (at once, not after the timeout).
        :raises RequestTimeout: no reply within ``timeout`` seconds.
        :raises RemoteError: the handler raised, or rejected the message.
        :raises InvalidMessage: ``message`` or the reply does not fit the channel's types.
        """
        if not self.instruments.active():
            return self._request(channel, message, timeout)
        with self.instruments.call("request", channel.name):
            return self._request(channel, message, timeout)

    def _request(self, channel: Channel[Req, Rep], message: Req, timeout: float | None) -> Rep:
        timeout = self._timeout(timeout)
        deadline = time.monotonic() + timeout
        runtime = self.runtime()
        body = channel.dump_request(message)
        runtime.ensure_started(deadline)
        refused_by: frozenset[str] = frozenset()
        while True:
            envelope = runtime.caller.request(channel, body, deadline, refused_by)
            if envelope is None:
                raise RequestTimeout(f"no reply on {channel.name!r} within {timeout} s")
            if envelope.kind == "reply":  # the common case, without a Reply or parsing its sender
                return channel.load_reply(envelope.body)
            reply = reply_from(channel, envelope)
            if reply.error is None:
                return reply.value  # type: ignore[return-value]
            if not isinstance(reply.error, ShuttingDown) or reply.sender is None or time.monotonic() >= deadline:
                raise reply.error
            if reply.sender.id in refused_by:
                raise NoResponders(f"the processes that serve {channel.name!r} are shutting down") from reply.error
            refused_by |= {reply.sender.id}  # it is shutting down and did not start the request: ask another

    def processes(self, limit: int = 1000) -> list[ProcessInfo]:
        """The live processes of this environment (web workers and backend workers), from their heartbeats: at
        most ``limit`` of them (records that do not read as the registry writes them are left out).

        :raises BrokerUnavailable: Redis could not be reached, or refused.
        """
        return self.process_page(limit)[0]

    def process_page(self, limit: int) -> tuple[list[ProcessInfo], bool]:
        """At most ``limit`` live processes, as :meth:`processes`; and whether there are more."""
        try:
            return self.runtime().processes(limit)
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"could not read the registry: {failure_reason(exc)}") from exc

    def instrument(self, instrument: Instrument) -> None:
        """Have ``instrument`` see every call and handler run of this broker, in every process and runtime
        (metrics and traces: :mod:`flask_multi_redis.metrics`, :mod:`flask_multi_redis.tracing`)."""
        self.instruments.add(instrument)

    def where(self) -> tuple[str, str]:
        """The address of the database this broker's messages travel through (password hidden), and the prefix
        of its environment, in the current context: what an error or a listing should name."""
        app = self.extension.context_app()
        wanted = self.database if self.database is not None else self.extension.databases_of(app)[0]
        return self.extension.where(wanted, app=app)  # from the configuration: it names a server that is down

    def responders(self, channel: Channel[Any, Any]) -> list[ProcessInfo]:
        """The live processes that handle requests on ``channel``."""
        return [process for process in self.processes() if channel.name in process.handlers]

    def _timeout(self, timeout: float | None) -> float:
        timeout = self.timeout if timeout is None else timeout
        if not 0 <= timeout <= self.max_timeout:
            raise ValueError(f"timeout must be from 0 to max_timeout ({self.max_timeout} s), not {timeout}")
        return timeout

    # --- one runtime per app in each process ----------------------------------------------------------------

    def _current(self, app: Flask | None) -> Runtime | None:
        """This process's runtime for ``app``, if any: a forked child (even one forked without Python's fork
        hooks) never uses its parent's."""
        runtime = self._own_runtime if app is None else self._runtimes.get(app)
        return runtime if runtime is not None and runtime.pid == os.getpid() else None

    def _runtime_for(self, app: Flask | None) -> Runtime:
        runtime = self._own_runtime if app is None else self._runtimes.get(app)  # as _current, on the hot path
        if runtime is not None and runtime.pid == os.getpid():
            return runtime
        with _runtime_lock:
            runtime = self._current(app)
            if runtime is None:
                session, verbs = self.wire_session(app)
                address = self.extension.addresses(app)[session.name]
                keys = self.extension.signing_keys(session.name, app=app)
                runtime = Runtime(self.settings(), self, session, app, address, keys, verbs, self.instruments)
                if app is None:
                    self._own_runtime = runtime
                else:
                    self._runtimes[app] = runtime
            return runtime

    def _forget(self, app: Flask | None, runtime: Runtime) -> None:
        with _runtime_lock:
            if app is None and self._own_runtime is runtime:
                self._own_runtime = None
            elif app is not None and self._runtimes.get(app) is runtime:
                del self._runtimes[app]

    def wire_session(self, app: Flask | None) -> tuple[RedisSession, commands.Verbs]:
        """The session the broker's messages travel through for ``app`` (None: its own configuration), whose
        prefix is the one on the wire, and its pub/sub: on a cluster, a session on the shard of the broker's
        hash tag, over sharded pub/sub.

        :raises BrokerUnavailable: a cluster, whose slot map is read first, does not answer.
        """
        wanted = self.database if self.database is not None else self.extension.databases_of(app)[0]
        try:
            session: object = self.extension.getRedis(wanted, app=app)  # a ClusterSession on a cluster
            if not isinstance(session, ClusterSession):
                assert isinstance(session, RedisSession)
                return session, commands.CLASSIC
            if not session.sharded:
                raise ConfigurationError(
                    f"database {wanted!r}",
                    "is on a Redis Cluster without sharded pub/sub, where a publish counts one node's subscribers",
                    "SHARDED_PUBSUB true (the default)",
                )
            return shard_session(session), commands.SHARDED
        except redis.RedisError as exc:
            address = self.extension.where(wanted, app=app)[0]
            raise BrokerUnavailable(f"Redis at {address}: {failure_reason(exc)}") from exc

    def _autostart(self, app: Flask) -> None:
        decision = when_to_start()
        if decision == "now":
            self._runtime_for(app).start()
        elif decision != "never" and app not in self._deferred:
            self._deferred.add(app)
            after_fork(lambda: self._start_in_child(app), gevent=decision == "after-gevent-fork")

    def _start_in_child(self, app: Flask) -> None:
        self._runtime_for(app).start()

    def routes_changed(self) -> None:
        """Follow a change of the routes: subscribe new channels, or start serving once there are routes."""
        for app in [None, *self.extension.apps]:
            runtime = self._current(app)
            if runtime is not None and runtime.listener.running:
                runtime.sync()
            elif app is not None:
                self._autostart(app)
