"""Which route's handler runs on this thread (or greenlet), so that a broker call made from it is known.

A handler that waits on a broker call of its own (a request, a gathered broadcast) must not run on the
listener's thread: that call's replies come over the listener's own pub/sub connection, which the handler would
be holding up until the call timed out. The responder marks such a route the first time one of its runs makes
a call, and then always hands it to the pool. Its first run is always in the pool, so a handler that always
makes one never runs on the listener's thread.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import TypeAlias

__all__ = ["done", "note_broker_call", "serving"]

#: While a handler runs: the keys of the routes known to call the broker, and this route's key.
Running: TypeAlias = "tuple[set[int], int] | None"

_SERVING: ContextVar[Running] = ContextVar("flask_multi_redis_serving", default=None)


def serving(calls_broker: set[int], route_key: int) -> Token[Running]:
    """Note that the route ``route_key`` runs here, until :func:`done` is given what this returns."""
    return _SERVING.set((calls_broker, route_key))


def done(token: Token[Running]) -> None:
    _SERVING.reset(token)


def note_broker_call() -> None:
    """A broker call that waits for replies is being made: if a handler runs here, mark its route."""
    running = _SERVING.get()
    if running is not None:
        running[0].add(running[1])
