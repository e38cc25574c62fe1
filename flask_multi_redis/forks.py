"""Locks that belong to the process that takes them.

A ``threading.Lock`` made in gunicorn's master under ``--preload`` is copied into every worker: held there if a
thread of the master held it at the fork, and, under gevent workers, a real OS lock (gevent patches the worker
after the fork, and does not convert locks made before): a greenlet that waits on it while another holds it across
network I/O blocks the worker's only thread for good (PITFALLS.md). :class:`PerProcess` makes a thing (a lock,
a thread pool) in the process that first uses it, after any patching; :class:`ProcessLock` is such a lock.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

__all__ = ["PerProcess", "ProcessLock"]

T = TypeVar("T")

_making = threading.Lock()  # held only while a lock is made, never across I/O: a real lock does no harm


def _forked() -> None:
    global _making  # a child's, in case a thread of the parent held it at the fork
    _making = threading.Lock()


os.register_at_fork(after_in_child=_forked)


class PerProcess(Generic[T]):
    """What ``make`` returns, made on first use in each process (after any patching: see above) and again in a
    forked child, whose copy of the parent's would be the parent's."""

    __slots__ = ("_made", "_make", "_pid")

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._made: T | None = None
        self._pid = 0

    def get(self) -> T:
        pid = os.getpid()
        made = self._made
        if made is None or self._pid != pid:
            with _making:
                if self._made is None or self._pid != pid:
                    self._made, self._pid = self._make(), pid
                made = self._made
        return made

    def made_here(self) -> T | None:
        """This process's, if it has made it; None otherwise (nothing is made)."""
        return self._made if self._pid == os.getpid() else None


class ProcessLock:
    """A mutual-exclusion lock (``with lock:``) made on first use in each process."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = PerProcess(lambda: threading.Lock())  # looked up when made: gevent patches threading.Lock

    def locked(self) -> bool:
        """Whether a thread (or greenlet) of this process holds it."""
        lock = self._lock.made_here()
        return lock is not None and lock.locked()

    def __enter__(self) -> bool:
        return self._lock.get().acquire()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._lock.get().release()
