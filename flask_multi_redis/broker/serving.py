"""The serving side of the broker's machinery: running commands and handlers, and answering them."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
import redis

from flask_multi_redis.errors import InvalidMessage, Overloaded, RemoteInvalidMessage, ShuttingDown

from . import names
from .calling import Calling
from .envelope import Envelope, Kind, now_ms, pack
from .pool import HandlerPool
from .router import Route
from .wire import Command, error_code

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["MAX_ERROR_MESSAGE", "NO_DEADLINE_TTL_MS", "Counters", "Serving"]

log = logging.getLogger(__name__)

#: How long a stored reply or a claim outlives a request without a deadline, in milliseconds.
NO_DEADLINE_TTL_MS = 60_000
#: The longest remote error message passed back to a caller.
MAX_ERROR_MESSAGE = 2000


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


def _error_body(error_type: str, message: str) -> bytes:
    """The body of an ``error`` envelope (PROTOCOL.md), the message cut to MAX_ERROR_MESSAGE characters."""
    return orjson.dumps({"type": error_type, "message": message[:MAX_ERROR_MESSAGE]})


class Serving(Calling):
    """Runs the routes of the messages this process receives, in the app context, and answers them."""

    app: Flask | None
    handlers: HandlerPool
    _costs: dict[int, float]
    _wire_routes: dict[bytes, Route]
    _handlers: dict[str, Route]
    _draining: bool
    _environment: str  # what every name of this environment starts with

    def _on_inbox(self, wire: bytes, data: bytes) -> None:
        envelope = self._unpack(wire, data)
        if envelope is None:
            return
        if envelope.kind == "request":
            self._accept(envelope, self._handlers.get(envelope.channel), claimed=True)
        elif envelope.kind in ("reply", "error"):
            self._resolve(envelope)
        else:
            self._drop(envelope, "a command cannot be sent to an inbox")

    def _on_shared(self, wire: bytes, data: bytes) -> None:
        envelope = self._unpack(wire, data)
        if envelope is None:
            return
        route = self._wire_routes.get(wire)
        expected = "command" if route is not None and route.kind == "command" else "request"
        if envelope.kind != expected:
            self._drop(envelope, f"a {envelope.kind} on a {expected} channel")
            return
        self._accept(envelope, route, claimed=expected == "command")

    def _accept(self, envelope: Envelope, route: Route | None, claimed: bool) -> None:
        if self._draining:
            self._refuse(envelope, claimed)
            return
        if route is None:
            self._drop(envelope, "no route for this channel in this process")
            return
        if envelope.reply_to and not envelope.reply_to.startswith(self._environment):
            self._drop(envelope, "reply_to is outside this environment's prefix")
            return
        if claimed and self._quick(route):
            self._run(envelope, route, claimed)  # no hand-over to a handler thread: see _quick
            return
        if envelope.expired():  # not worth a place in the queue
            self._expired(envelope, route)
            return
        if not self.handlers.submit(lambda: self._run(envelope, route, claimed)):
            if self._draining:  # it began to drain since the check above
                self._refuse(envelope, claimed)
                return
            if not claimed and not self._claim(envelope):
                return  # another process serves it
            self.counters.count("overloaded")
            log.error("handler pool full, refused %s id=%s channel=%s", envelope.kind, envelope.id, route.channel.name)
            self._answer_error(envelope, Overloaded.REMOTE_TYPE, "the handler pool of this process is full")

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
            self._answer_error(envelope, ShuttingDown.REMOTE_TYPE, f"{self.sender} is shutting down; it did not start")

    def _run(self, envelope: Envelope, route: Route, claimed: bool) -> None:
        if self._draining:  # queued before the drain began, not started: the caller may go elsewhere
            self._refuse(envelope, claimed)
            return
        if not claimed and not self._claim(envelope):
            return
        if envelope.expired():
            self._expired(envelope, route)
            return
        try:
            message = route.channel.load_request(envelope.body)
        except InvalidMessage as exc:
            self.counters.count("failed")
            log.warning("invalid %s id=%s channel=%s: %s", envelope.kind, envelope.id, route.channel.name, exc)
            self._answer_error(envelope, RemoteInvalidMessage.REMOTE_TYPE, str(exc))
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

    def _expired(self, envelope: Envelope, route: Route) -> None:
        self.counters.count("expired")
        log.warning(
            "expired before it started, not run: %s id=%s channel=%s", envelope.kind, envelope.id, route.channel.name
        )

    def _claim(self, envelope: Envelope) -> bool:
        key = names.claim_key(self.prefix, envelope.id)
        try:
            return bool(self.redis.set(key, self.sender.id, nx=True, px=self._ttl_ms(envelope)))
        except redis.RedisError:
            log.exception("could not claim request id=%s channel=%s", envelope.id, envelope.channel)
            return False

    def _answer_error(self, envelope: Envelope, error_type: str, message: str) -> None:
        self._answer(envelope, "error", _error_body(error_type, message))

    def _answer(self, envelope: Envelope, kind: Kind, body: bytes) -> None:
        """Keep the answer in its reply list (TTL: the request's deadline), then publish it to the caller's inbox
        if it has one. The list is what a caller reads when its pub/sub connection was away (PUBLISH may count
        a receiver whose connection is dying); one that got the answer by pub/sub deletes the list itself."""
        if envelope.kind == "command" and not envelope.reply_to:
            return  # a plain broadcast: nobody waits
        try:
            data = pack(
                kind, envelope.id, envelope.channel, body, sender=self.sender, max_size=self.broker.max_message_size
            )
        except InvalidMessage as exc:  # the reply is too large: say so instead
            body = _error_body(type(exc).__name__, str(exc))
            data = pack("error", envelope.id, envelope.channel, body, sender=self.sender, max_size=len(body) + 4096)
        key = names.reply_key(self.prefix, envelope.id)
        commands: list[Command] = [("RPUSH", key, data), ("PEXPIRE", key, self._ttl_ms(envelope))]
        if envelope.reply_to:
            commands.append(("PUBLISH", envelope.reply_to, data))
        for attempt in (1, 2):  # a round trip that failed is sent again: callers count one answer per sender
            try:
                replies = self.lane.pipeline(commands, raise_errors=False)  # kept, then published, in one write
            except redis.RedisError as exc:
                if attempt == 2 or not isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
                    failed = f"could not send the {kind} for id={envelope.id} channel={envelope.channel}"
                    log.error("%s: %s", failed, type(exc).__name__)
                    return
                continue
            for command, reply in zip(commands, replies, strict=True):
                if isinstance(reply, Exception):  # OOM, a read-only replica: the rest went ahead
                    failed = f"the {kind} for id={envelope.id} channel={envelope.channel}"
                    log.error("%s: Redis refused %s (%s)", failed, command[0], error_code(reply))
            return

    @staticmethod
    def _ttl_ms(envelope: Envelope) -> int:
        if envelope.deadline is None:
            return NO_DEADLINE_TTL_MS
        return max(1000, envelope.deadline - now_ms() + 1000)

    def _app_context(self) -> contextlib.AbstractContextManager[Any]:
        return self.app.app_context() if self.app is not None else contextlib.nullcontext()
