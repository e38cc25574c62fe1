"""redis-py under gevent, without a trip through gevent's hub before every command.

Before its pool lends a connection, redis-py asks whether the connection holds unread data or was closed by the
server: a ``poll`` with a timeout of 0. In a process gevent has patched, that is gevent's cooperative poll,
which starts an I/O watcher, switches to the hub and back, and stops the watcher: on this 2-core machine it made
one ``INCR`` cost about 40 us more CPU than the command itself (benchmarks/NOTES.md). A poll with a timeout of 0
never blocks, so the operating system's own gives the same answer and cooperates just as well.

:func:`fast_readiness_checks` gives redis-py's hiredis parser (the only one it uses with hiredis installed) a
``select`` whose zero-timeout polls are the operating system's and whose other polls stay gevent's (a pub/sub
``get_message(timeout=1)`` still lets other greenlets run). It changes nothing else, and nothing at all in a
process gevent has not patched. The package calls it when it makes clients and when a broker starts; it applies
to every redis-py client of the process.
"""

from __future__ import annotations

import select
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["fast_readiness_checks"]


class _Poll:
    """``select.poll()`` for redis-py's parser: the operating system's poll for a zero timeout, else gevent's."""

    __slots__ = ("_fds", "_os_poll")

    def __init__(self, os_poll: Callable[[], Any]) -> None:
        self._os_poll = os_poll
        self._fds: list[tuple[Any, int]] = []

    def register(self, fd: Any, eventmask: int = select.POLLIN | select.POLLPRI | select.POLLOUT) -> None:
        self._fds.append((fd, eventmask))

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        poller = self._os_poll() if timeout == 0 else select.poll()  # select.poll is gevent's once patched
        for fd, eventmask in self._fds:
            poller.register(fd, eventmask)
        return poller.poll(timeout)


class _Select:
    """The ``select`` module as redis-py's parser sees it: the same, but for :class:`_Poll`."""

    def __init__(self, os_poll: Callable[[], Any]) -> None:
        self._os_poll = os_poll

    def poll(self) -> _Poll:
        return _Poll(self._os_poll)

    def __getattr__(self, name: str) -> Any:
        return getattr(select, name)


def fast_readiness_checks() -> bool:
    """Make redis-py's zero-timeout readiness checks skip gevent's hub, once gevent has patched ``select``;
    whether they do (False in an unpatched process, or a redis-py whose parser no longer polls this way)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("select"):
        return False
    from redis._parsers import hiredis as parser

    current = getattr(parser, "select", None)  # redis-py's module global, read and replaced by name
    if isinstance(current, _Select):
        return True
    if current is not select or not hasattr(parser, "_socket_can_read"):  # not the redis-py this was written for
        return False
    setattr(parser, "select", _Select(monkey.get_original("select", "poll")))  # noqa: B010
    return True
