"""The broker's machinery in one process: its listener and inbox, the calls waiting for replies, the handlers
it serves, and its heartbeat in the registry.

Delivery (PROTOCOL.md has the details): a request goes to ONE live responder's own inbox channel, picked in
turn from the registry, so exactly one handler runs without a claim on the hot path; when no registered
responder receives it, it goes to the channel's shared request channel, where subscribers race for a SET NX
claim; when nobody receives that either, :class:`NoResponders` is raised at once. A reply is kept in a list
that lives until the request's deadline and published to the caller's inbox; the caller reads the list after a
reconnect, and deletes it with its next command once it has the reply. Commands that change Redis are never
retried by redis-py here: a retried PUBLISH could run a handler twice.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import redis

from flask_multi_redis.connection import derived_client
from flask_multi_redis.errors import (
    BrokerUnavailable,
    InvalidMessage,
    NoResponders,
)

from . import names, registry
from .channel import Channel
from .envelope import Envelope, Kind, Sender, deadline_after, pack, unpack
from .lane import Lane
from .listener import Listener, ListenerHealth
from .pool import HandlerPool
from .process import new_sender
from .registry import ProcessInfo
from .router import Route, RouteKind

if TYPE_CHECKING:
    from flask import Flask

    from flask_multi_redis.session import RedisSession

    from .broker import Broker

__all__ = ["SHUTTING_DOWN", "Call", "Counters", "Runtime", "new_id"]

log = logging.getLogger(__name__)

# Keep a reply in a list (TTL: the request's deadline) and publish it to the caller's inbox. The list is what
# a caller reads when its pub/sub connection was away (PUBLISH may count a receiver whose connection is dying);
# a caller that got the reply by pub/sub deletes the list with its next command.
_REPLY_SCRIPT = """
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[1] ~= '' then return redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return 0
"""

#: How long a stored reply or a claim outlives a request without a deadline, in milliseconds.
NO_DEADLINE_TTL_MS = 60_000
#: How long a call waits for one of the broker's connections, in seconds.
SOCKET_TIMEOUT = 5.0
#: The longest single BLPOP of a caller waiting on its reply list, in seconds (below the socket timeout).
BLPOP_SLICE = 2.0
#: The error type of a request refused by a process that is shutting down: safe to send elsewhere.
SHUTTING_DOWN = "ShuttingDown"
#: The longest remote error message passed back to a caller.
MAX_ERROR_MESSAGE = 2000


def new_id() -> str:
    """An unguessable correlation id (128 random bits)."""
    return secrets.token_urlsafe(16)


@dataclass
class Call:
    """A request or gathered broadcast in flight: the replies that have come in, and how many are awaited."""

    id: str
    expected: int
    replies: list[Envelope] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def add(self, envelope: Envelope) -> None:
        """Count a reply once per sender: a reply may arrive both by pub/sub and from the kept list."""
        sender = envelope.sender.id if envelope.sender is not None else None
        if sender is not None and any(r.sender is not None and r.sender.id == sender for r in self.replies):
            return
        self.replies.append(envelope)
        if len(self.replies) >= self.expected:
            self.done.set()

    def expect(self, count: int) -> None:
        self.expected = count
        if len(self.replies) >= count:
            self.done.set()


@dataclass
class Counters:
    """What this process's broker has done with the messages it received."""

    handled: int = 0
    failed: int = 0
    expired: int = 0
    dropped: int = 0
    overloaded: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)


class Runtime:
    """Everything the broker runs in this process for one app (or one dict-configured extension)."""

    def __init__(self, broker: Broker, session: RedisSession, app: Flask | None) -> None:
        self.broker = broker
        self.session = session
        self.app = app
        self.pid = os.getpid()
        self.sender: Sender = new_sender(broker.role)
        self.prefix = session.prefix
        self.inbox = names.inbox_channel(self.prefix, self.sender.id)
        self.started_at = time.time()
        self.counters = Counters()
        name = f"flask-redis:{self.sender.id}"  # CLIENT LIST tells which process holds a connection
        self.redis = derived_client(session, max(1, broker.connections - 2), SOCKET_TIMEOUT, name)  # + 2 lanes
        # The listener's own loop reconnects (not redis-py), so it knows when it was away and catches up.
        listening = derived_client(session, 1, SOCKET_TIMEOUT, name)
        self.listener = Listener(listening, name=f"flask-redis-listener-{self.pid}", on_ready=self._catch_up)
        self.handlers = HandlerPool(broker.concurrency, broker.max_pending)
        self._calls: dict[str, Call] = {}
        self._costs: dict[int, float] = {}  # route -> its handler's average run time, seconds
        self._spent: list[str] = []  # reply lists of finished calls, deleted with the next command
        self._direct = threading.Lock()  # held by the one call that waits on its reply list
        self._wire_routes: dict[bytes, tuple[RouteKind, str]] = {}
        self._responders: dict[str, tuple[float, list[str]]] = {}
        self._turn = itertools.count()
        self._reply = self.redis.register_script(_REPLY_SCRIPT)
        self.lane = Lane(self.redis)  # quick commands
        self._waiting = Lane(self.redis)  # the BLPOP of the one call that waits on its reply list
        self._beat_now = threading.Event()
        self._registered = threading.Event()
        self._generation = 0
        self._stopping = threading.Event()
        self._heart: threading.Thread | None = None
        self._listed = False  # in the registry: from start until drain or stop
        self._registry_lock = threading.Lock()  # a heartbeat never re-lists a process that has left
        self._draining = False

    # --- lifecycle ------------------------------------------------------------------------------------------

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
        routes = self.broker.routes()
        for route in routes:
            name = route.channel.name
            if route.kind == "command":
                wire = names.channel_wire(self.prefix, name)
            else:
                wire = names.request_channel(self.prefix, name)
            if wire.encode() not in self._wire_routes:
                self._wire_routes[wire.encode()] = (route.kind, name)
                self.listener.subscribe(wire, self._on_shared)
        self._generation += 1
        self._registered.clear()
        self._beat_now.set()

    def ensure_started(self, deadline: float) -> None:
        """Start if needed and wait (until the monotonic ``deadline``) for the inbox to be subscribed."""
        if not self.listener.running:
            self.start()
        if not self.listener.wait_ready(max(0.0, deadline - time.monotonic())):
            raise BrokerUnavailable(f"the broker's listener is not connected to Redis ({self.session.name!r})")

    def wait_ready(self, timeout: float) -> bool:
        """True once the listener is subscribed and, when serving, registered in the registry."""
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
        """Leave the registry, stop listening, and let running handlers finish within ``timeout``."""
        self._stopping.set()
        self._beat_now.set()
        if self._heart is not None:
            self._heart.join(timeout)
        with contextlib.suppress(redis.RedisError):
            self._flush_spent()
            self._unregister()
        stopped = self.listener.stop(timeout)
        stopped = self.handlers.join(timeout) and stopped
        self.lane.close()
        self._waiting.close()
        self.redis.connection_pool.disconnect()
        self.listener.client.connection_pool.disconnect()
        return stopped

    def health(self) -> ListenerHealth:
        return self.listener.health()

    # --- calling ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def call(self, expected: int) -> Iterator[Call]:
        """Register a call so that replies to its id are collected, for as long as the block runs."""
        call = Call(id=new_id(), expected=expected)
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
        """Deliver to exactly one responder: one in the registry by turns (not those to ``avoid``), else the
        shared request channel, else raise :class:`NoResponders`."""
        for target in self._responder_ids(channel.name):
            if target in avoid:
                continue
            if self._publish(names.inbox_channel(self.prefix, target), data):
                return
            self._forget(channel.name, target)
        if not self._publish(names.request_channel(self.prefix, channel.name), data):
            raise NoResponders(f"nobody serves channel {channel.name!r} (prefix {self.prefix!r})")

    def broadcast(self, channel: Channel[Any, Any], data: bytes) -> int:
        return self._publish(names.channel_wire(self.prefix, channel.name), data)

    def ask(self, channel: Channel[Any, Any], body: bytes, deadline: float, avoid: frozenset[str]) -> list[Envelope]:
        """Send one request and wait for its reply until the monotonic ``deadline``; [] when none came.

        One call at a time per process waits with BLPOP on its own reply list (no reply_to, so nothing is
        published back): that saves the hand-over from the listener thread, the sequential caller's common case.
        Calls made meanwhile wait on the inbox instead, so in-flight calls do not each hold a connection.
        """
        if not self._direct.acquire(blocking=False):
            with self.call(expected=1) as call:
                remaining = deadline - time.monotonic()
                self.send_request(channel, self.envelope("request", call.id, channel, body, remaining, True), avoid)
                return self.wait(call, deadline)
        try:
            call_id = new_id()
            remaining = deadline - time.monotonic()
            self.send_request(channel, self.envelope("request", call_id, channel, body, remaining, False), avoid)
            return self._wait_listed(call_id, deadline)
        finally:
            self._direct.release()

    def _wait_listed(self, call_id: str, deadline: float) -> list[Envelope]:
        key = names.reply_key(self.prefix, call_id)
        timeout = self.redis.connection_pool.connection_kwargs.get("socket_timeout") or SOCKET_TIMEOUT
        slice_ = min(BLPOP_SLICE, timeout / 2)  # each wait ends well before the socket would time out
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                try:  # BLMOVE onto itself waits without taking the reply out: a lost connection loses nothing
                    found = self._waiting.execute(
                        "BLMOVE", key, key, "RIGHT", "RIGHT", max(0.01, min(remaining, slice_))
                    )
                except (redis.ConnectionError, redis.TimeoutError):
                    log.warning("waiting for the reply to %s: Redis connection lost; retrying", call_id)
                    self._stopping.wait(0.05)
                    continue
                if found is not None:
                    envelope = self._unpack(key.encode(), found)
                    if envelope is not None and envelope.kind in ("reply", "error"):
                        return [envelope]
            return []
        finally:
            self._spent.append(key)  # deleted with the next command

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
        spent, self._spent = self._spent, []
        try:
            if not spent:
                return int(self.lane.execute("PUBLISH", wire, data))
            return int(self.lane.pipeline([("UNLINK", *spent), ("PUBLISH", wire, data)])[-1])
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"could not publish on {wire!r}: {type(exc).__name__}") from exc

    def _flush_spent(self) -> None:
        spent, self._spent = self._spent, []
        if spent:
            self.lane.execute("UNLINK", *spent)

    def _responder_ids(self, channel: str) -> list[str]:
        now = time.monotonic()
        cached = self._responders.get(channel)
        if cached is None or cached[0] < now:
            try:
                ids = registry.responder_ids(self.lane, self.prefix, channel)
            except redis.RedisError as exc:
                raise BrokerUnavailable(f"could not read the responders of {channel!r}") from exc
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

    # --- receiving --------------------------------------------------------------------------------------------

    def _on_inbox(self, wire: bytes, data: bytes) -> None:
        envelope = self._unpack(wire, data)
        if envelope is None:
            return
        if envelope.kind == "request":
            self._accept(envelope, self.broker.route("handler", envelope.channel), claimed=True)
        elif envelope.kind in ("reply", "error"):
            self._resolve(envelope)
        else:
            self._drop(envelope, "a command cannot be sent to an inbox")

    def _on_shared(self, wire: bytes, data: bytes) -> None:
        envelope = self._unpack(wire, data)
        if envelope is None:
            return
        route_kind, name = self._wire_routes.get(wire, ("handler", ""))
        expected = "command" if route_kind == "command" else "request"
        if envelope.kind != expected:
            self._drop(envelope, f"a {envelope.kind} on a {expected} channel")
            return
        self._accept(envelope, self.broker.route(route_kind, name), claimed=route_kind == "command")

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

    # --- serving ----------------------------------------------------------------------------------------------

    def _accept(self, envelope: Envelope, route: Route | None, claimed: bool) -> None:
        if self._draining:
            self._refuse(envelope, claimed)
            return
        if route is None:
            self._drop(envelope, "no route for this channel in this process")
            return
        if envelope.reply_to and not envelope.reply_to.startswith(names.environment(self.prefix)):
            self._drop(envelope, "reply_to is outside this environment's prefix")
            return
        if envelope.expired():
            self.counters.count("expired")
            log.warning(
                "expired before it started, not run: %s id=%s channel=%s",
                envelope.kind,
                envelope.id,
                route.channel.name,
            )
            return
        if claimed and self._quick(route):
            self._run(envelope, route, claimed)  # no hand-over to a handler thread: see _quick
            return
        if not self.handlers.submit(lambda: self._run(envelope, route, claimed)):
            if self._draining:  # it began to drain since the check above
                self._refuse(envelope, claimed)
                return
            if not claimed and not self._claim(envelope):
                return  # another process serves it
            self.counters.count("overloaded")
            log.error("handler pool full, refused %s id=%s channel=%s", envelope.kind, envelope.id, route.channel.name)
            self._answer_error(envelope, "Overloaded", "the handler pool of this process is full")

    def _quick(self, route: Route) -> bool:
        """Whether to run ``route`` on the listener's own thread: when no other handler runs or waits and its
        handler has been quick so far (under ``broker.inline_below`` seconds on average). Handing a message to a
        handler thread costs more than such a handler; a slow one always goes to the pool."""
        limit = self.broker.inline_below
        return limit > 0 and self.handlers.in_flight == 0 and self._costs.get(id(route), limit) < limit

    def _note_cost(self, route: Route, seconds: float) -> None:
        previous = self._costs.get(id(route))
        self._costs[id(route)] = seconds if previous is None else 0.8 * previous + 0.2 * seconds

    def _refuse(self, envelope: Envelope, claimed: bool) -> None:
        """Answer ``ShuttingDown`` (the request was not started: the caller may send it elsewhere)."""
        if claimed or self._claim(envelope):
            self._answer_error(envelope, SHUTTING_DOWN, f"{self.sender} is shutting down; it did not start")

    def _run(self, envelope: Envelope, route: Route, claimed: bool) -> None:
        if self._draining:  # queued before the drain began, not started: the caller may go elsewhere
            self._refuse(envelope, claimed)
            return
        if not claimed and not self._claim(envelope):
            return
        if envelope.expired():
            self.counters.count("expired")
            log.warning("expired in the queue, not run: id=%s channel=%s", envelope.id, route.channel.name)
            return
        try:
            message = route.channel.load_request(envelope.body)
        except InvalidMessage as exc:
            self.counters.count("failed")
            log.warning("invalid %s id=%s channel=%s: %s", envelope.kind, envelope.id, route.channel.name, exc)
            self._answer_error(envelope, "InvalidMessage", str(exc))
            return
        try:
            started = time.perf_counter()
            with self._app_context():
                result = route.func(message)
            self._note_cost(route, time.perf_counter() - started)
            body = route.channel.dump_reply(result) if envelope.reply_to or envelope.kind == "request" else b"null"
        except Exception as exc:
            self.counters.count("failed")
            log.exception("%s for id=%s channel=%s raised", route.kind, envelope.id, route.channel.name)
            self._answer_error(envelope, type(exc).__name__, str(exc))
            return
        self.counters.count("handled")
        self._answer(envelope, "reply", body)

    def _claim(self, envelope: Envelope) -> bool:
        key = names.claim_key(self.prefix, envelope.id)
        try:
            return bool(self.redis.set(key, self.sender.id, nx=True, px=self._ttl_ms(envelope)))
        except redis.RedisError:
            log.exception("could not claim request id=%s channel=%s", envelope.id, envelope.channel)
            return False

    def _answer_error(self, envelope: Envelope, error_type: str, message: str) -> None:
        body = orjson.dumps({"type": error_type, "message": message[:MAX_ERROR_MESSAGE]})
        self._answer(envelope, "error", body)

    def _answer(self, envelope: Envelope, kind: Kind, body: bytes) -> None:
        if envelope.kind == "command" and not envelope.reply_to:
            return  # a plain broadcast: nobody waits
        try:
            data = pack(
                kind, envelope.id, envelope.channel, body, sender=self.sender, max_size=self.broker.max_message_size
            )
        except InvalidMessage as exc:
            data = pack(
                kind="error",
                id=envelope.id,
                channel=envelope.channel,
                sender=self.sender,
                max_size=self.broker.max_message_size,
                body_json=orjson.dumps({"type": type(exc).__name__, "message": str(exc)}),
            )
        args = (1, names.reply_key(self.prefix, envelope.id), envelope.reply_to or "", data, self._ttl_ms(envelope))
        for attempt in (1, 2):  # twice: a second copy of a reply is harmless, callers count one per sender
            try:
                try:
                    self.lane.execute("EVALSHA", self._reply.sha, *args)
                except redis.exceptions.NoScriptError:  # a restarted server has forgotten the script
                    self.lane.execute("EVAL", _REPLY_SCRIPT, *args)
                return
            except (redis.ConnectionError, redis.TimeoutError):
                if attempt == 2:
                    log.exception("could not send the %s for id=%s channel=%s", kind, envelope.id, envelope.channel)
            except redis.RedisError:
                log.exception("could not send the %s for id=%s channel=%s", kind, envelope.id, envelope.channel)
                return

    @staticmethod
    def _ttl_ms(envelope: Envelope) -> int:
        if envelope.deadline is None:
            return NO_DEADLINE_TTL_MS
        return max(1000, envelope.deadline - int(time.time() * 1000) + 1000)

    def _app_context(self) -> contextlib.AbstractContextManager[Any]:
        return self.app.app_context() if self.app is not None else contextlib.nullcontext()

    # --- registry ---------------------------------------------------------------------------------------------

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
        routes = self.broker.routes() if not self._draining else []
        return ProcessInfo(
            sender=self.sender,
            inbox=self.inbox,
            handlers=tuple(sorted(r.channel.name for r in routes if r.kind == "handler")),
            commands=tuple(sorted(r.channel.name for r in routes if r.kind == "command")),
            started_at=self.started_at,
            handled=self.counters.handled,
            failed=self.counters.failed,
        )

    def _register(self) -> None:
        registry.register(self.lane, self.prefix, self.info(), int(self.broker.heartbeat_interval * 3000))

    def _unregister(self) -> None:
        handlers = tuple(sorted(r.channel.name for r in self.broker.routes() if r.kind == "handler"))
        with self._registry_lock:
            if self._listed:
                self._listed = False
                registry.unregister(self.lane, self.prefix, self.sender.id, handlers)

    def _close_idle_waiting(self) -> None:
        """Close the BLPOP connection when no call has used it for a heartbeat: an idle process holds two."""
        if self._waiting.idle_for() > self.broker.heartbeat_interval and self._direct.acquire(blocking=False):
            try:
                self._waiting.close()
            finally:
                self._direct.release()
