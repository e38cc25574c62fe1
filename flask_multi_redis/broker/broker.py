"""Broker: what app code uses (``ext.broker``): the route decorators, publish, broadcast and request."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, overload

import redis

from flask_multi_redis.connection import failure_reason
from flask_multi_redis.errors import (
    BrokerError,
    BrokerUnavailable,
    InvalidMessage,
    NoResponders,
    RequestTimeout,
    ShuttingDown,
    remote_error,
)

from . import registry
from .calling import new_id
from .channel import Channel
from .envelope import Envelope, Sender
from .listener import ListenerHealth
from .process import after_fork, when_to_start
from .registry import ProcessInfo
from .router import Router
from .runtime import Runtime
from .serving import Counters

if TYPE_CHECKING:
    from flask_multi_redis.extension import _AppState, _FlaskRedis

__all__ = ["Broker", "BrokerHealth", "Reply"]

Req = TypeVar("Req")
Rep = TypeVar("Rep")

#: Default largest message, far below the 32 MB at which Redis drops a pub/sub client by default.
MAX_MESSAGE_SIZE = 1024 * 1024

_runtime_lock = threading.Lock()  # guards creation only; nothing that blocks runs while it is held


@dataclass(frozen=True)
class Reply(Generic[Rep]):
    """One process's answer to a gathered broadcast: its ``value`` when ``ok``, otherwise the ``error``.

    A process that received the broadcast but did not answer in time has ``sender=None`` and a
    :class:`~flask_multi_redis.RequestTimeout` as its error.
    """

    sender: Sender | None
    ok: bool
    value: Rep | None = None
    error: BrokerError | None = None


@dataclass(frozen=True)
class BrokerHealth:
    """The broker's state in this process."""

    sender: Sender
    listener: ListenerHealth
    counters: Counters
    in_flight: int


class Broker(Router):
    """Commands, handlers and calls over one Redis database of a Flask extension; see ``ext.broker``.

    It starts listening by itself in each process that serves once it has routes and an app (each gunicorn
    worker, also with ``--preload``; not the master, not the Flask reloader's parent, not other ``flask``
    commands); :meth:`start` starts it explicitly, for example when it is configured from a dict.

    :param role: how this process shows in the registry (``web``, ``worker``).
    :param database: the database (name or index) whose server carries the messages; default: the first one.
    :param concurrency: handlers that may run at once in this process.
    :param connections: command connections the broker may hold in this process (at least 3): its lane for
        short commands, the one for the call waiting on its reply list, and a pool for the rest (calls queue for
        one beyond that); besides its one pub/sub connection. In-flight calls do not each need a connection.
    :param max_pending: received messages that may wait for a handler; beyond it requests get ``Overloaded``.
    :param max_message_size: the largest envelope sent or accepted, in bytes.
    :param timeout: the default timeout of :meth:`request` and gathered broadcasts, in seconds.
    :param heartbeat_interval: seconds between two registry heartbeats (entries live three intervals).
    :param registry_cache: seconds a caller trusts its copy of a channel's responders.
    :param inline_below: a handler whose average run time is below this many seconds runs on the listener's
        thread when nothing else runs, saving the hand-over to a handler thread; 0 never does.
    """

    def __init__(
        self,
        extension: _FlaskRedis,
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
    ) -> None:
        super().__init__()
        if connections < 3:
            raise ValueError("connections must be at least 3: the lane, the reply wait and one pooled connection")
        self.extension = extension
        self.role = role
        self.database = database
        self.concurrency = concurrency
        self.connections = connections
        self.max_pending = max_pending
        self.max_message_size = max_message_size
        self.timeout = timeout
        self.heartbeat_interval = heartbeat_interval
        self.registry_cache = registry_cache
        self.inline_below = inline_below
        self._deferred: set[int] = set()

    # --- lifecycle ------------------------------------------------------------------------------------------

    def runtime(self) -> Runtime:
        """This process's broker machinery for the current app (or the extension's own config)."""
        return self._runtime_for(self.extension._state())

    def start(self, timeout: float | None = None) -> Runtime:
        """Start listening now; with ``timeout``, also wait until subscribed and registered (or raise)."""
        runtime = self.runtime().start()
        if timeout is not None and not runtime.wait_ready(timeout):
            raise RequestTimeout(f"the broker was not ready within {timeout} s")
        return runtime

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop listening in this process; True when everything ended within ``timeout``. Using the broker
        afterwards starts it again, afresh."""
        state = self.extension._state()
        runtime = state.runtime
        if runtime is None or runtime.pid != os.getpid():
            return True
        with _runtime_lock:
            if state.runtime is runtime:
                state.runtime = None
        return runtime.stop(timeout)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until this process's listener is subscribed and, when it serves, registered."""
        return self.runtime().wait_ready(timeout)

    def health(self) -> BrokerHealth:
        runtime = self.runtime()
        return BrokerHealth(runtime.sender, runtime.health(), runtime.counters, runtime.handlers.in_flight)

    def bind(self, state: _AppState) -> None:
        """Called by the extension's ``init_app``: start serving for that app if this process should."""
        if self.routes():
            self._autostart(state)

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
            are reported, not waited for).
        """
        runtime = self.runtime()
        body = channel.dump_request(message)
        if not gather:
            return runtime.broadcast(channel, runtime.envelope("command", new_id(), channel, body, None, False))
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        runtime.ensure_started(deadline)
        with runtime.call(expected=1 << 30) as call:
            remaining = deadline - time.monotonic()
            receivers = runtime.broadcast(channel, runtime.envelope("command", call.id, channel, body, remaining, True))
            call.expect(receivers)
            envelopes = runtime.wait(call, deadline) if receivers else []
        replies = [self._reply(channel, envelope) for envelope in envelopes[:receivers]]
        missing = RequestTimeout(f"no reply on {channel.name!r} within {timeout} s")
        return replies + [Reply(None, False, error=missing) for _ in range(receivers - len(replies))]

    def request(self, channel: Channel[Req, Rep], message: Req, timeout: float | None = None) -> Rep:
        """Have exactly one process that serves ``channel`` handle ``message``; its reply, validated.

        :raises NoResponders: nobody serves the channel (at once, not after the timeout).
        :raises RequestTimeout: no reply within ``timeout`` seconds.
        :raises RemoteError: the handler raised, or rejected the message.
        :raises InvalidMessage: ``message`` or the reply does not fit the channel's types.
        """
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        runtime = self.runtime()
        body = channel.dump_request(message)
        runtime.ensure_started(deadline)
        refused_by: frozenset[str] = frozenset()
        while True:
            envelopes = runtime.ask(channel, body, deadline, refused_by)
            if not envelopes:
                raise RequestTimeout(f"no reply on {channel.name!r} within {timeout} s")
            if envelopes[0].kind == "reply":  # the common case, without a Reply or parsing its sender
                return channel.load_reply(envelopes[0].body)
            reply = self._reply(channel, envelopes[0])
            if reply.error is None:
                return reply.value  # type: ignore[return-value]
            if not isinstance(reply.error, ShuttingDown) or reply.sender is None or time.monotonic() >= deadline:
                raise reply.error
            if reply.sender.id in refused_by:
                raise NoResponders(f"the processes that serve {channel.name!r} are shutting down") from reply.error
            refused_by |= {reply.sender.id}  # it is shutting down and did not start the request: ask another

    def processes(self) -> list[ProcessInfo]:
        """Every live process of this environment (web workers and backend workers), from their heartbeats.

        :raises BrokerUnavailable: Redis could not be reached, or refused.
        """
        runtime = self.runtime()
        try:
            return registry.live_processes(runtime.redis, runtime.prefix)
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"could not read the registry: {failure_reason(exc)}") from exc

    def responders(self, channel: Channel[Any, Any]) -> list[ProcessInfo]:
        """The live processes that handle requests on ``channel``."""
        return [process for process in self.processes() if channel.name in process.handlers]

    @staticmethod
    def _reply(channel: Channel[Any, Rep], envelope: Envelope) -> Reply[Rep]:
        sender = envelope.sender
        if envelope.kind == "error":
            body = envelope.body if isinstance(envelope.body, dict) else {}
            error = remote_error(str(body.get("type", "Error")), str(body.get("message", "")), str(sender or ""))
            return Reply(sender, False, error=error)
        try:
            return Reply(sender, True, value=channel.load_reply(envelope.body))
        except InvalidMessage as exc:
            return Reply(sender, False, error=exc)

    # --- starting in the right process ----------------------------------------------------------------------

    def _runtime_for(self, state: _AppState) -> Runtime:
        runtime = state.runtime
        if runtime is not None and runtime.pid == os.getpid():  # any fork, also one without Python's hooks
            return runtime
        with _runtime_lock:
            if state.runtime is None or state.runtime.pid != os.getpid():
                session = state.lookup(self.database) if self.database is not None else state.first()
                state.runtime = Runtime(self, session, state.app)
            return state.runtime

    def _autostart(self, state: _AppState) -> None:
        decision = when_to_start()
        if decision == "now":
            self._runtime_for(state).start()
        elif decision != "never" and id(state) not in self._deferred:
            self._deferred.add(id(state))
            after_fork(lambda: self._start_in_child(state), gevent=decision == "after-gevent-fork")

    def _start_in_child(self, state: _AppState) -> None:
        self._runtime_for(state).start()

    def routes_changed(self) -> None:
        """Follow a change of the routes: subscribe new channels, or start serving once there are routes."""
        for state in self.extension._bound_states():
            runtime = state.runtime
            if runtime is not None and runtime.pid == os.getpid() and runtime.listener.running:
                runtime.sync()
            elif state.app is not None:
                self._autostart(state)
