"""Locks that belong to the process that takes them.

A ``threading.Lock`` made in gunicorn's master under ``--preload`` is copied into every worker: held there if a
thread of the master held it at the fork, and, under gevent workers, a real OS lock (gevent patches the worker
after the fork, and does not convert locks made before): a greenlet that waits on it while another holds it across
network I/O blocks the worker's only thread for good (PITFALLS.md). :class:`ProcessLock` makes its lock in the
process that first takes it, after any patching.
"""

from __future__ import annotations

import os
import threading
from types import TracebackType

__all__ = ["ProcessLock"]

_making = threading.Lock()  # held only while a lock is made, never across I/O: a real lock does no harm


def _forked() -> None:
    global _making  # a child's, in case a thread of the parent held it at the fork
    _making = threading.Lock()


os.register_at_fork(after_in_child=_forked)


class ProcessLock:
    """A mutual-exclusion lock (``with lock:``) made on first use in each process."""

    __slots__ = ("_lock", "_pid")

    def __init__(self) -> None:
        self._lock: threading.Lock | None = None
        self._pid = 0

    def _current(self) -> threading.Lock:
        pid = os.getpid()
        lock = self._lock
        if lock is None or self._pid != pid:
            with _making:
                if self._lock is None or self._pid != pid:
                    self._lock, self._pid = threading.Lock(), pid
                lock = self._lock
        return lock

    def locked(self) -> bool:
        """Whether a thread (or greenlet) of this process holds it."""
        lock = self._lock
        return lock is not None and self._pid == os.getpid() and lock.locked()

    def __enter__(self) -> bool:
        return self._current().acquire()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._current().release()
