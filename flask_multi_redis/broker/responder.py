"""The responding part of a process's broker: it runs the routes of the messages it receives, in the app
context, and answers them.

A request addressed to this process (on its inbox) is its own to serve; one on a shared request channel is
served by the process that claims it (SET NX); a command runs in every process that receives it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson
import redis

from flask_multi_redis.connection import CONNECTION_LOST, describe
from flask_multi_redis.errors import (
    InvalidMessage,
    Overloaded,
    RemoteBrokerUnavailable,
    RemoteInvalidMessage,
    ShuttingDown,
)

from . import commands, names, serving
from .envelope import Envelope, Kind, Sender, now_ms, pack
from .health import Counters
from .instruments import Instruments
from .intake import Intake
from .pipeline import PipelinedConnection
from .pool import PASS_THROUGH, HandlerPool, text_of
from .router import Route

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["IDLE_INLINE", "MAX_ERROR_MESSAGE", "NO_DEADLINE_TTL_MS", "Responder"]

log = logging.getLogger(__name__)

#: How long a kept answer or a claim outlives a request without a deadline, in milliseconds.
NO_DEADLINE_TTL_MS = 60_000
#: The longest remote error message passed back to a caller.
MAX_ERROR_MESSAGE = 2000
#: A handler below this many times ``inline_below`` runs on the listener's thread while nothing waits behind it.
IDLE_INLINE = 5


def _error_body(error_type: str, message: str) -> bytes:
    """The body of an ``error`` envelope (PROTOCOL.md), the message cut to MAX_ERROR_MESSAGE characters."""
    return orjson.dumps({"type": error_type, "message": message[:MAX_ERROR_MESSAGE]})


def _ttl_ms(envelope: Envelope, longest: int) -> int:
    """How long an answer to ``envelope`` is kept, and its claim held: until its deadline and a second more, but
    never longer than ``longest`` milliseconds, whatever deadline the sender wrote."""
    if envelope.deadline is None:
        return min(NO_DEADLINE_TTL_MS, longest)
    return max(1000, min(envelope.deadline - now_ms() + 1000, longest))


class Responder:
    """Serves the routes of this process: a handler pool for most, the listener's own thread for quick ones.

    :param max_ttl_ms: the longest a claim or a kept answer lives, whatever deadline a request carries.
    :param error_messages: send callers the text of a handler's exception; False: only its type.
    :param inline_below: a handler whose average run time so far is below this many seconds runs on the
        listener's thread while no other handler runs or waits (0: never); one below IDLE_INLINE times as much
        runs there too when, besides, no other message has arrived behind its own.
    :param backlog: whether another message has arrived behind the one being served (the listener's
        :meth:`~.Listener.backlog`); by default, never.
    """

    def __init__(
        self,
        *,
        prefix: str,
        sender: Sender,
        max_message_size: int,
        max_ttl_ms: int,
        error_messages: bool,
        inline_below: float,
        app: Flask | None,
        pipelined: PipelinedConnection,
        handlers: HandlerPool,
        counters: Counters,
        intake: Intake,
        verbs: commands.Verbs = commands.CLASSIC,
        instruments: Instruments | None = None,
        backlog: Callable[[], bool] = lambda: False,
    ) -> None:
        self.prefix = prefix
        self.sender = sender
        self.handlers = handlers
        self._max_message_size = max_message_size
        self._max_ttl_ms = max_ttl_ms
        self._error_messages = error_messages
        self._inline_below = inline_below
        self._app = app
        self._pipelined = pipelined
        self._counters = counters
        self._instruments = instruments or Instruments()
        self._intake = intake
        self._verbs = verbs
        self._backlog = backlog
        self._environment = names.environment(prefix)  # what every name of this environment starts with
        self._by_subscription: dict[bytes, Route] = {}  # the route of each command or request channel
        self._handlers: dict[str, Route] = {}  # handler routes by channel name, for requests sent to the inbox
        self._costs: dict[int, float] = {}  # route -> its handler's average run time, seconds
        self._calls_broker: set[int] = set()  # routes whose handler waited on a broker call: see serving.py
        self._draining = False
        self._inline = False  # while a handler runs on the listener's thread

    def serve(self, subscription: bytes, route: Route) -> bool:
        """Serve ``route`` for the messages of the (prefixed, encoded) channel ``subscription``; False when it is
        served already."""
        if route.kind == "handler":
            self._handlers[route.channel.name] = route
        if subscription in self._by_subscription:
            return False
        self._by_subscription[subscription] = route
        return True

    @property
    def in_flight(self) -> int:
        """Handlers running or queued, the one on the listener's thread included."""
        return self.handlers.in_flight + self._inline

    def wait_inline(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a handler running on the listener's thread; True when none runs.
        (It looks every 5 ms: a drain's wait, where a handoff on every message would cost the hot path.)"""
        deadline = time.monotonic() + timeout
        while self._inline and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._inline

    def drain(self) -> None:
        """Take no more work: what still reaches this process, or waits in the handler queue, is answered
        ``ShuttingDown`` (see :meth:`.Runtime.drain`)."""
        self._draining = True

    @property
    def draining(self) -> bool:
        return self._draining

    def on_request(self, envelope: Envelope) -> None:
        """A request addressed to this process (on its inbox): no other process receives it, so no claim."""
        self._accept(envelope, self._handlers.get(envelope.channel), needs_claim=False)

    def on_message(self, subscription: bytes, data: bytes) -> None:
        """A message on a command or shared request channel (a listener callback)."""
        envelope = self._intake.read(subscription, data)
        if envelope is None:
            return
        route = self._by_subscription.get(subscription)
        expected = "command" if route is not None and route.kind == "command" else "request"
        if envelope.kind != expected:
            self._intake.drop(envelope, f"a {envelope.kind} on a {expected} channel")
            return
        if route is not None and envelope.channel != route.channel.name:  # a message copied to another channel
            self._intake.drop(envelope, f"it names channel {envelope.channel!r}, not the one it came on")
            return
        self._accept(envelope, route, needs_claim=expected == "request")

    def _accept(self, envelope: Envelope, route: Route | None, needs_claim: bool) -> None:
        if self._draining:
            self._refuse(envelope, needs_claim)
            return
        if route is None:
            self._intake.drop(envelope, "no route for this channel in this process")
            return
        if envelope.reply_to and not envelope.reply_to.startswith(self._environment):
            self._intake.drop(envelope, "reply_to is outside this environment's prefix")
            return
        if not needs_claim and self._runs_inline(route):
            self._inline = True  # a drain, and the health, count it as in flight (a flag: this is the hot path)
            try:
                self._run(envelope, route, needs_claim)  # no hand-over to a handler thread: see _runs_inline
            finally:
                self._inline = False
            return
        if envelope.expired():  # not worth a place in the queue
            self._expired(envelope, route)
            return
        if not self.handlers.submit(lambda: self._run(envelope, route, needs_claim)):
            if self._draining:  # it began to drain since the check above
                self._refuse(envelope, needs_claim)
                return
            if needs_claim and not self._claim(envelope):
                return  # another process serves it
            self._counters.count("overloaded")
            log.error("handler pool full, refused %s id=%s channel=%s", envelope.kind, envelope.id, route.channel.name)
            self._answer_error(envelope, Overloaded.REMOTE_TYPE, "the handler pool of this process is full")

    def _runs_inline(self, route: Route) -> bool:
        """Whether to run ``route`` on the listener's own thread: when no other handler runs or waits and its
        handler has been quick so far (a first run goes to the pool). Handing a message to a handler thread
        costs more than such a handler. One that takes longer, a single Redis command say, whose time sits
        around the mark on a slow machine, runs there too as long as no other message waits behind it, rather
        than going back and forth between the two from one run to the next; a slow one always goes to the pool,
        and so does one that has waited on a broker call of its own (see :mod:`.serving`)."""
        limit = self._inline_below
        if limit <= 0 or self.handlers.in_flight or id(route) in self._calls_broker:
            return False
        cost = self._costs.get(id(route))
        return cost is not None and (cost < limit or (cost < IDLE_INLINE * limit and not self._backlog()))

    def _note_cost(self, route: Route, seconds: float) -> None:
        previous = self._costs.get(id(route))
        self._costs[id(route)] = seconds if previous is None else 0.8 * previous + 0.2 * seconds

    def _refuse(self, envelope: Envelope, needs_claim: bool) -> None:
        """Answer ``ShuttingDown`` (the request was not started: the caller may send it elsewhere)."""
        if not needs_claim or self._claim(envelope):
            self._answer_error(envelope, ShuttingDown.REMOTE_TYPE, f"{self.sender} is shutting down; it did not start")

    def _run(self, envelope: Envelope, route: Route, needs_claim: bool) -> None:
        if self._draining:  # queued before the drain began, not started: the caller may go elsewhere
            self._refuse(envelope, needs_claim)
            return
        if needs_claim and not self._claim(envelope):
            return
        if envelope.expired():
            self._expired(envelope, route)
            return
        try:
            message = route.channel.load_request(envelope.body)
        except InvalidMessage as exc:
            self._counters.count("failed")
            log.warning("invalid %s id=%s channel=%s: %s", envelope.kind, envelope.id, route.channel.name, exc)
            self._answer_error(envelope, RemoteInvalidMessage.REMOTE_TYPE, str(exc))
            return
        answers = bool(envelope.reply_to) or envelope.kind == "request"
        try:
            started = time.perf_counter()
            running = serving.serving(self._calls_broker, id(route))
            try:  # a reply that does not fit its type is the run's outcome: instruments see it as a failure
                with self._app_context():
                    if self._instruments.active():
                        with self._instruments.handle(route.kind, route.channel.name, envelope.id, envelope.headers):
                            result = route.func(message)
                            body = route.channel.dump_reply(result) if answers else b"null"
                    else:
                        result = route.func(message)
                        body = route.channel.dump_reply(result) if answers else b"null"
            finally:
                serving.done(running)
            self._note_cost(route, time.perf_counter() - started)
        except BaseException as exc:  # SystemExit, gevent.Timeout too: the caller is answered, the thread lives on
            if isinstance(exc, PASS_THROUGH):
                raise
            self._counters.count("failed")
            log.exception("%s for id=%s channel=%s raised", route.kind, envelope.id, route.channel.name)
            self._answer_error(envelope, type(exc).__name__, text_of(exc) if self._error_messages else "")
            return
        self._counters.count("handled")
        self._answer(envelope, "reply", body)

    def _expired(self, envelope: Envelope, route: Route) -> None:
        self._counters.count("expired")
        log.warning(
            "expired before it started, not run: %s id=%s channel=%s", envelope.kind, envelope.id, route.channel.name
        )

    def _claim(self, envelope: Envelope) -> bool:
        """Whether this process takes the request. When Redis refuses the claim (an error reply: ``OOM``, say),
        the caller is told at once (``BrokerUnavailable``) rather than left to wait out its timeout. When the
        reply is lost (a timeout, a lost connection: the claim may have been made), it claims once more and
        reads who has the request; if that fails too, or cannot say who has it, it neither runs nor answers it
        (another process may be running it). Both tries end by the request's deadline."""
        key, owner = names.claim_key(self.prefix, envelope.id), self.sender.id
        ttl_ms = _ttl_ms(envelope, self._max_ttl_ms)
        deadline = None if envelope.deadline is None else time.monotonic() + (envelope.deadline - now_ms()) / 1000
        try:
            try:
                return bool(self._pipelined.execute(*commands.claim(key, owner, ttl_ms), deadline=deadline))
            except (redis.ConnectionError, redis.TimeoutError):
                again = commands.claim_again(key, owner, ttl_ms)
                return commands.claimed_by(self._pipelined.run(again, raise_errors=False, deadline=deadline), owner)
        except redis.RedisError as exc:
            log.error("could not claim request id=%s channel=%s: %s", envelope.id, envelope.channel, describe(exc))
            if isinstance(exc, redis.ResponseError):
                self._answer_error(
                    envelope, RemoteBrokerUnavailable.REMOTE_TYPE, f"could not claim it: {describe(exc)}"
                )
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
            signer, size = self._intake.signer, self._max_message_size
            data = pack(kind, envelope.id, envelope.channel, body, sender=self.sender, max_size=size, signer=signer)
        except InvalidMessage as exc:  # the reply is too large: say so instead
            body = _error_body(type(exc).__name__, str(exc))
            data = pack(
                "error",
                envelope.id,
                envelope.channel,
                body,
                sender=self.sender,
                max_size=len(body) + 4096,
                signer=signer,
            )
        key, ttl_ms = names.reply_key(self.prefix, envelope.id), _ttl_ms(envelope, self._max_ttl_ms)
        sent = commands.answer(key, data, ttl_ms, envelope.reply_to, self._verbs)
        what = f"the {kind} for id={envelope.id} channel={envelope.channel}"

        def check(replies: list[Any] | redis.RedisError) -> None:
            if isinstance(replies, redis.RedisError):
                log.error("could not send %s: %s", what, type(replies).__name__)
                return
            for command, reply in zip(sent, replies, strict=True):
                if isinstance(reply, Exception):  # OOM, a read-only replica: the rest went ahead
                    log.error("%s: Redis refused %s (%s)", what, command[0], describe(reply))

        for attempt in (1, 2):  # a write that failed is sent again: callers count one answer per sender
            try:  # kept, then published, in one write; the replies are read later (see PipelinedConnection.post)
                self._pipelined.post(sent, check)
            except redis.RedisError as exc:
                if attempt == 2 or not isinstance(exc, CONNECTION_LOST):
                    check(exc)
                    return
                continue
            return

    def _app_context(self) -> contextlib.AbstractContextManager[Any]:
        return self._app.app_context() if self._app is not None else contextlib.nullcontext()
