"""The heartbeat: a thread that does a process's periodic chores (renewing its registry entry among them),
every interval and at once after a change, and tells when a beat has followed the latest change."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flask_multi_redis.connection import failure_reason

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)


class Heartbeat:
    """Runs ``beat`` every ``interval`` seconds on a daemon thread (a greenlet under gevent).

    :param first: called once on the thread before the first beat, with ``interval``: a wait for the listener
        to be ready, say, so that a process is not listed before it can receive.
    """

    def __init__(self, interval: float, beat: Callable[[], None], first: Callable[[float], object], name: str) -> None:
        self.interval = interval
        self._beat = beat
        self._first = first
        self._name = name
        self._now = threading.Event()
        self._current = threading.Event()  # a beat succeeded after the latest change
        self._changes = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def changed(self) -> None:
        """Something the beat reports changed: beat now, and :meth:`wait_current` waits for that beat."""
        self._changes += 1
        self._current.clear()
        self._now.set()

    def wait_current(self, timeout: float) -> bool:
        """Wait until a beat has succeeded since the latest change."""
        return self._current.wait(timeout)

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        self._now.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        self._first(self.interval)
        failing = False
        while not self._stopping.is_set():
            try:
                self._now.clear()
                changes = self._changes
                self._beat()
                if changes == self._changes:
                    self._current.set()
                if failing:
                    log.warning("%s: the heartbeat works again", self._name)
                failing = False
            except Exception as exc:  # one line for each outage; every failure's traceback at DEBUG
                if not failing:
                    reason = failure_reason(exc)
                    log.warning("%s: the heartbeat failed: %s; trying every %.1f s", self._name, reason, self.interval)
                log.debug("%s: the heartbeat failed", self._name, exc_info=exc)
                failing = True
            self._now.wait(self.interval)
