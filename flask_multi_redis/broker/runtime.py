"""A process's broker runtime for one app: it builds the parts and wires them together, and owns their lifecycle.

The parts, each built with what it needs: the connections (a pipelined one for short commands, the reply wait's
own, a bounded pool, the listener's pub/sub one), the :class:`~.caller.Caller`, the
:class:`~.responder.Responder` and its handler pool, the registry entry and the heartbeat that renews it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from flask_multi_redis.connection import derived_client, failure_reason
from flask_multi_redis.errors import BrokerUnavailable
from flask_multi_redis.gevent_io import fast_readiness_checks

from . import commands, names
from .caller import Caller
from .directory import ResponderDirectory
from .health import BrokerHealth, Counters, MinuteSummary
from .heartbeat import Heartbeat
from .instruments import Instruments
from .intake import Intake
from .listener import Listener, encoded_name
from .pipeline import PipelinedConnection
from .pool import HandlerPool
from .process import log_through_gunicorn, new_sender
from .registry import ProcessInfo, Registration, live_processes
from .reply_lists import WAIT_SLICE, DeferredUnlink, ReplyListWait
from .responder import Responder
from .router import Router
from .settings import BrokerSettings
from .signing import Signer

if TYPE_CHECKING:
    from flask import Flask

    from flask_multi_redis.session import RedisSession

__all__ = ["POOL_WAIT", "Runtime"]

#: How long a call waits for one of the broker's pooled connections, in seconds.
POOL_WAIT = 5.0
#: How long a runtime may take to stop when its process exits, in seconds (gunicorn gives a worker 30).
EXIT_TIMEOUT = 5.0


class Runtime:
    """Everything the broker runs in this process for one app (or one dict-configured extension).

    :param router: whose routes this process serves (the broker, with the routers it includes).
    :param session: the database whose server carries the messages.
    :param app: the app whose context handlers run in.
    :param address: the session's server, as messages name it (password hidden).
    :param signing_keys: the keys that sign its messages and registry records (the first signs, any is
        accepted); none: nothing is signed.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        router: Router,
        session: RedisSession,
        app: Flask | None,
        address: str = "Redis",
        signing_keys: tuple[bytes, ...] = (),
        verbs: commands.Verbs = commands.CLASSIC,
        instruments: Instruments | None = None,
    ) -> None:
        fast_readiness_checks()  # clients made before gevent patched this process (a preloading master's)
        self.settings = settings
        self.session = session
        self.app = app
        self.address = address
        self.pid = os.getpid()
        self.sender = new_sender(settings.role)
        self.prefix = session.prefix
        self.inbox = names.inbox_channel(self.prefix, self.sender.id)
        self.started_at = time.time()
        self.counters = Counters()
        self._summary = MinuteSummary(str(self.sender), self.counters)
        self._router = router
        name = f"flask-redis:{self.sender.id}"  # CLIENT LIST tells which process holds a connection
        self.client = derived_client(session, settings.connections - 2, POOL_WAIT, name)  # the two others below
        self._pipelined = PipelinedConnection(self.client)
        self.signed = bool(signing_keys)
        signer = Signer(signing_keys, self.prefix) if signing_keys else None
        self._signer = signer
        self._intake = Intake(self.counters, settings.max_message_size, signer)
        self._unlinks = DeferredUnlink()
        socket_timeout = self.client.connection_pool.connection_kwargs["socket_timeout"]
        wait_slice = min(WAIT_SLICE, socket_timeout / 2)  # a blocked read must not time out first
        self._reply_wait = ReplyListWait(self.client, self._pipelined, self._unlinks, self._intake, wait_slice, verbs)
        self.caller = Caller(
            prefix=self.prefix,
            sender=self.sender,
            inbox=self.inbox,
            max_message_size=settings.max_message_size,
            pipelined=self._pipelined,
            directory=ResponderDirectory(self._pipelined, self.prefix, settings.registry_cache, signer),
            unlinks=self._unlinks,
            reply_wait=self._reply_wait,
            intake=self._intake,
            verbs=verbs,
        )
        # The listener's own loop reconnects (not redis-py), so it knows when it was away and catches up.
        self.listener = Listener(
            self.client,
            name=f"flask-redis-listener-{self.pid}",
            address=address,
            verbs=verbs,
            on_ready=self.caller.read_kept_replies,
        )
        self._handlers = HandlerPool(settings.concurrency, settings.max_pending)
        self.responder = Responder(
            prefix=self.prefix,
            sender=self.sender,
            max_message_size=settings.max_message_size,
            max_ttl_ms=settings.max_ttl_ms,
            error_messages=settings.error_messages,
            inline_below=settings.inline_below,
            app=app,
            pipelined=self._pipelined,
            handlers=self._handlers,
            counters=self.counters,
            intake=self._intake,
            verbs=verbs,
            instruments=instruments or Instruments(),
            backlog=self.listener.backlog,
        )
        self._registration = Registration(self._pipelined, self.prefix, self.info, signer)
        self._heartbeat = Heartbeat(
            settings.heartbeat_interval, self._beat, self.listener.wait_ready, f"flask-redis-heartbeat-{self.pid}"
        )
        self._lifecycle = threading.Lock()  # one start, and no start once stopping
        self._started = False
        self._stopped = False

    def start(self) -> Runtime:
        """Subscribe the inbox and every routed channel; start the listener and the heartbeat. The runtime
        stops when the process exits normally (a gunicorn worker that is recycled or shut down, a script):
        what reached it by then is answered, or refused as ``ShuttingDown``. Later calls do nothing.

        :raises BrokerUnavailable: it is stopping or has stopped (the broker makes a new one for the next use).
        """
        with self._lifecycle:
            if self._stopped:
                raise BrokerUnavailable(f"the broker at {self.address} is stopping in this process")
            if self._started:
                return self
            log_through_gunicorn()
            self.listener.subscribe(self.inbox, self._on_inbox)
            self.sync()
            self.listener.start()
            self._registration.join()
            self._heartbeat.start()
            atexit.register(self._stop_at_exit)
            self._started = True  # last: a start that raised half-way is tried again by the next call
        return self

    def sync(self) -> None:
        """Follow the router: subscribe channels that gained a route, renew the heartbeat now.

        Commands and requests have channels of their own, so that a publish counts only processes that answer.
        """
        for route in self._router.routes():
            if route.kind == "command":
                channel = names.command_channel(self.prefix, route.channel.name)
            else:
                channel = names.request_channel(self.prefix, route.channel.name)
            if self.responder.serve(encoded_name(self.client, channel), route):
                self.listener.subscribe(channel, self.responder.on_message)
        self._heartbeat.changed()

    def ensure_started(self, deadline: float) -> None:
        """Start if need be and wait (until the monotonic ``deadline``) for the inbox to be subscribed.

        :raises BrokerUnavailable: it is not, by then, or it has never connected and has failed (at once: a
            refused connection, a wrong password or a certificate that does not verify is no passing glitch).
        """
        listener = self.listener
        if listener.ready and not self._stopped:
            return
        self.start()
        while not listener.wait_ready(min(0.05, max(0.0, deadline - time.monotonic()))):
            failed = listener.last_error
            if (failed is not None and not listener.connected_once) or time.monotonic() >= deadline:
                raise self._unavailable(failed)

    def ensure_ready(self, deadline: float) -> None:
        """As :meth:`ensure_started`, and wait for the registry to list this process too."""
        self.ensure_started(deadline)
        if not self._heartbeat.wait_current(max(0.0, deadline - time.monotonic())):
            raise BrokerUnavailable(f"the broker at {self.address} could not renew its registry entry in time")

    def _unavailable(self, failed: Exception | None) -> BrokerUnavailable:
        reason = "no connection yet" if failed is None else failure_reason(failed)
        error = BrokerUnavailable(f"the broker's listener is not connected to Redis at {self.address}: {reason}")
        error.__cause__ = failed
        return error

    def wait_ready(self, timeout: float) -> bool:
        """True once the listener is subscribed and the process is in the registry."""
        deadline = time.monotonic() + timeout
        if not self.listener.wait_ready(timeout):
            return False
        return self._heartbeat.wait_current(max(0.0, deadline - time.monotonic()))

    def drain(self, grace: float, on_closed: Callable[[], None] | None = None) -> bool:
        """Stop taking work and let the handlers in flight finish within ``grace`` seconds; True when they did.

        The process leaves the registry at once; a request that still reaches it is answered ``ShuttingDown``
        (never started), and the caller sends it to another process. It stays subscribed until it stops: a
        message published just before an UNSUBSCRIBE would be counted as received, and then lost.
        """
        self.responder.drain()
        with contextlib.suppress(redis.RedisError):
            self._registration.leave(self._router.channel_names("handler"), time.monotonic() + grace)
        if on_closed is not None:
            on_closed()
        self._handlers.run_queued_here()  # each refuses: not started, its caller goes elsewhere at once
        deadline = time.monotonic() + grace
        finished = self._handlers.join(grace)
        return self.responder.wait_inline(max(0.0, deadline - time.monotonic())) and finished

    def stop(self, timeout: float = 5.0) -> bool:
        """Leave the registry, stop listening, and let running handlers (and a call waiting on its reply list)
        finish, all within ``timeout``; True when everything ended in time. When Redis does not answer, it
        returns within ``timeout`` and SLACK (half a second) at most."""
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        with self._lifecycle:
            self._stopped = True
        atexit.unregister(self._stop_at_exit)
        self.responder.drain()  # what arrives from now on is refused: ShuttingDown
        self._handlers.run_queued_here()  # queued, not started: refused now, while the answers can still go out
        self._heartbeat.stop(left())
        with contextlib.suppress(redis.RedisError):
            self._registration.leave(self._router.channel_names("handler"), deadline)
        if left() > 0:  # reply lists left behind expire by themselves: no new round trip past the deadline
            with contextlib.suppress(redis.RedisError):
                self._unlinks.flush(self._pipelined, deadline)
        stopped = self.caller.settle(deadline)  # calls on the inbox get their replies before it stops listening
        stopped = self.listener.stop(left()) and stopped
        stopped = self._handlers.join(left()) and stopped
        self._pipelined.close(left(), for_good=True)
        stopped = self._reply_wait.close(left()) and stopped
        self.client.connection_pool.disconnect()
        return stopped

    def _stop_at_exit(self) -> None:
        if os.getpid() == self.pid:  # a forked child inherits the hook, not the runtime
            self.stop(EXIT_TIMEOUT)

    def health(self) -> BrokerHealth:
        return BrokerHealth(
            self.sender,
            self.listener.health(),
            self.counters,
            self.responder.in_flight,
            self.caller.waiting,
            draining=self.responder.draining,
        )

    def info(self) -> ProcessInfo:
        """This process as the registry shows it."""
        draining = self.responder.draining
        return ProcessInfo(
            sender=self.sender,
            inbox=self.inbox,
            handlers=() if draining else self._router.channel_names("handler"),
            commands=() if draining else self._router.channel_names("command"),
            started_at=self.started_at,
            handled=self.counters.handled,
            failed=self.counters.failed,
        )

    def processes(self, limit: int) -> tuple[list[ProcessInfo], bool]:
        """The live processes of this environment, from the registry: at most ``limit``, and whether there
        are more."""
        return live_processes(self.client, self.prefix, limit, self._signer)

    def _beat(self) -> None:
        deadline = time.monotonic() + self.settings.heartbeat_interval  # a beat never holds up the next
        self._summary.tick()
        self._unlinks.flush(self._pipelined, deadline)
        self._reply_wait.close_if_idle(self.settings.heartbeat_interval)
        self._registration.renew(self.settings.heartbeat_ttl_ms, deadline)

    def _on_inbox(self, channel: bytes, data: bytes) -> None:
        envelope = self._intake.read(channel, data)
        if envelope is None:
            return
        if envelope.kind == "request":
            self.responder.on_request(envelope)
        elif envelope.kind in ("reply", "error"):
            self.caller.resolve(envelope)
        else:
            self._intake.drop(envelope, "a command cannot be sent to an inbox")
