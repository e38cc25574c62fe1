"""A bounded pool that runs handlers: a fixed number of workers fed by a bounded queue.

The workers are threads, hence greenlets once gevent has patched ``threading``; the pool is created lazily in
the process that uses it, never in a preloading master.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

__all__ = ["HandlerPool"]

log = logging.getLogger(__name__)

Job = Callable[[], None]


class HandlerPool:
    """Runs jobs on ``size`` workers; :meth:`submit` refuses a job when ``max_pending`` are already waiting."""

    def __init__(self, size: int, max_pending: int, name: str = "flask-redis-handler") -> None:
        if size < 1 or max_pending < 1:
            raise ValueError("the pool needs size >= 1 and max_pending >= 1")
        self.size = size
        self.name = name
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=max_pending)
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._busy = 0
        self._closing = False

    def submit(self, job: Job) -> bool:
        """Queue ``job``; False when the queue is full or the pool is closing (the caller reports it)."""
        if self._closing:
            return False
        if not self._workers:
            self._start()
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            return False
        return True

    @property
    def in_flight(self) -> int:
        """Jobs queued or running."""
        return self._jobs.qsize() + self._busy

    def join(self, timeout: float) -> bool:
        """Let the queued and running jobs finish, then stop the workers; True when they ended in time."""
        deadline = time.monotonic() + timeout
        self._closing = True  # no job may be queued behind the stop markers
        try:
            for _ in self._workers:
                self._jobs.put(None, timeout=max(0.0, deadline - time.monotonic()))
        except queue.Full:
            return False  # still full of work at the deadline; the daemon workers end with the process
        stopped = True
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
            stopped = stopped and not worker.is_alive()
        self._workers.clear()
        return stopped

    def _start(self) -> None:
        with self._lock:
            if self._workers:
                return
            for index in range(self.size):
                worker = threading.Thread(target=self._work, name=f"{self.name}-{index}", daemon=True)
                worker.start()
                self._workers.append(worker)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            with self._lock:
                self._busy += 1
            try:
                job()
            except Exception:  # jobs report their own errors; this is the last line of defence
                log.exception("a job in %s raised", self.name)
            finally:
                with self._lock:
                    self._busy -= 1
