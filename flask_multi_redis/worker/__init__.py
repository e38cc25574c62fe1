"""The backend process: :class:`Worker` serves a Flask app's broker routes; ``flask-redis-worker`` runs one.

``Worker`` loads on first use, so that the console script can monkey-patch for gevent before anything else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Worker"]


def __getattr__(name: str) -> Any:
    if name == "Worker":
        from .worker import Worker

        return Worker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from .worker import Worker
