"""What metrics, traces and DEBUG logs see of the broker's work, through one seam: each instrument is told of
every call this process makes (a request, a broadcast) and every handler it runs, as a context manager around
it, and may add headers to the envelope the call sends (a trace context, PROTOCOL.md). With no instrument and
DEBUG off, nothing is done."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from contextvars import ContextVar
from typing import Literal, Protocol

__all__ = ["CALL_IDS", "OUTGOING", "CallKind", "Instrument", "Instruments", "isolated", "outcome", "timed"]

log = logging.getLogger(__name__)

#: The headers the envelopes made in this context carry (set around an instrumented call).
OUTGOING: ContextVar[dict[str, str] | None] = ContextVar("flask_multi_redis_outgoing_headers", default=None)

#: The correlation ids a call made in this context used (collected around an instrumented call, for its DEBUG
#: line: the handler's line carries the same id).
CALL_IDS: ContextVar[list[str] | None] = ContextVar("flask_multi_redis_call_ids", default=None)

#: A call: a request (one handler answers), a broadcast (every command runs), a gather (a broadcast whose
#: replies are collected).
CallKind = Literal["request", "broadcast", "gather"]


class Instrument(Protocol):
    """Sees the broker's calls and handler runs. Each method returns a context manager around the work; an
    exception raised by the work goes through it (its type is the outcome)."""

    def call(self, kind: CallKind, channel: str, headers: dict[str, str]) -> AbstractContextManager[None]: ...
    def handle(self, kind: str, channel: str, headers: Mapping[str, str]) -> AbstractContextManager[None]: ...


class Instruments:
    """The instruments of one broker, shared by its runtimes."""

    def __init__(self) -> None:
        self.items: tuple[Instrument, ...] = ()

    def add(self, instrument: Instrument) -> None:
        self.items = (*self.items, instrument)

    def active(self) -> bool:
        """Whether a call or a handler run needs to go through :meth:`call` / :meth:`handle` at all."""
        return bool(self.items) or log.isEnabledFor(logging.DEBUG)

    @contextmanager
    def call(self, kind: CallKind, channel: str) -> Iterator[None]:
        """Around a call: every instrument's, the headers they add on the envelopes made inside, a DEBUG line."""
        headers: dict[str, str] = {}
        ids: list[str] = []

        def logged(seconds: float, error: BaseException | None) -> None:
            used = ",".join(ids) or "-"
            log.debug("%s: channel=%s id=%s %.2f ms %s", kind, channel, used, seconds * 1000, outcome(error))

        with ExitStack() as stack:
            for instrument in self.items:
                stack.enter_context(isolated(instrument.call(kind, channel, headers), instrument))
            token, noted = OUTGOING.set(headers or None), CALL_IDS.set(ids)
            try:
                with timed(logged):
                    yield
            finally:
                CALL_IDS.reset(noted)
                OUTGOING.reset(token)

    @contextmanager
    def handle(self, kind: str, channel: str, envelope_id: str, headers: Mapping[str, str]) -> Iterator[None]:
        """Around a handler run: every instrument's, and a DEBUG line."""

        def logged(seconds: float, error: BaseException | None) -> None:
            log.debug("%s ran: channel=%s id=%s %.2f ms %s", kind, channel, envelope_id, seconds * 1000, outcome(error))

        with ExitStack() as stack:
            for instrument in self.items:
                stack.enter_context(isolated(instrument.handle(kind, channel, headers), instrument))
            with timed(logged):
                yield


@contextmanager
def isolated(around: AbstractContextManager[None], instrument: Instrument) -> Iterator[None]:
    """An instrument's context around the work, kept from changing it: what the instrument raises as it begins
    or ends is logged, not passed on; what the work raises goes through the instrument, and on, unchanged."""
    try:
        around.__enter__()
    except Exception:
        log.exception("instrument %r failed as the work began", instrument)
        yield
        return
    try:
        yield
    except BaseException as exc:
        try:
            around.__exit__(type(exc), exc, exc.__traceback__)
        except Exception as failed:
            if failed is not exc:
                log.exception("instrument %r failed as the work ended", instrument)
        raise
    try:
        around.__exit__(None, None, None)
    except Exception:
        log.exception("instrument %r failed as the work ended", instrument)


@contextmanager
def timed(report: Callable[[float, BaseException | None], None]) -> Iterator[None]:
    """Around some work: ``report(seconds, error)`` once it ends, ``error`` the exception that ended it (which
    goes on), or None."""
    started, error = time.perf_counter(), None
    try:
        yield
    except BaseException as exc:
        error = exc
        raise
    finally:
        report(time.perf_counter() - started, error)


def outcome(error: BaseException | None) -> str:
    """How a piece of work ended, as a label: ``ok``, or the type of the exception that ended it."""
    return "ok" if error is None else type(error).__name__
