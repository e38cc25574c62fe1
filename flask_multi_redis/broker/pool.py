"""A bounded pool that runs handlers: a fixed number of workers fed by a bounded queue.

The workers are threads, hence greenlets once gevent has patched ``threading``; the pool is created lazily in
the process that uses it, never in a preloading master. The queue is a ``SimpleQueue`` (its hand-over is the
cheapest the standard library has) with the bound kept beside it.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

__all__ = ["PASS_THROUGH", "HandlerPool", "text_of"]

log = logging.getLogger(__name__)

Job = Callable[[], None]


def _greenlet_exit() -> tuple[type[BaseException], ...]:
    try:
        from greenlet import GreenletExit
    except ImportError:  # no gevent, no greenlets
        return ()
    return (GreenletExit,)


#: What a handler may raise that must end its thread or greenlet: an interrupt, a kill. Anything else, SystemExit
#: and gevent.Timeout included, is the handler's failure, answered as such.
PASS_THROUGH: tuple[type[BaseException], ...] = (KeyboardInterrupt, GeneratorExit, *_greenlet_exit())


def text_of(exc: BaseException) -> str:
    """``str(exc)``; a word on why there is none when its ``__str__`` raises."""
    try:
        return str(exc)
    except Exception:
        return f"(a {type(exc).__name__} whose text could not be made)"


class HandlerPool:
    """Runs jobs on ``size`` workers; :meth:`submit` refuses a job when ``max_pending`` are already waiting."""

    def __init__(self, size: int, max_pending: int, name: str = "flask-redis-handler") -> None:
        if size < 1 or max_pending < 1:
            raise ValueError("the pool needs size >= 1 and max_pending >= 1")
        self.size = size
        self.max_pending = max_pending
        self.name = name
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._pending = 0  # queued, not started
        self._busy = 0  # running
        self._closing = False

    def submit(self, job: Job) -> bool:
        """Queue ``job``; False when the queue is full or the pool is closing (the caller reports it)."""
        if self._closing:
            return False
        if not self._workers:
            self._start()
        with self._lock:
            if self._closing or self._pending >= self.max_pending:
                return False
            self._pending += 1
        self._jobs.put(job)
        return True

    @property
    def in_flight(self) -> int:
        """Jobs queued or running."""
        return self._pending + self._busy

    def run_queued_here(self) -> None:
        """Run the queued jobs that no worker has started, in this thread, now (a draining owner's jobs only
        refuse their work, so that their callers need not wait for a busy worker to reach them)."""
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is None:
                continue
            with self._lock:
                self._pending -= 1
            try:
                job()
            except Exception:
                log.exception("a job in %s raised", self.name)

    def join(self, timeout: float) -> bool:
        """Let the queued and running jobs finish, then stop the workers; True when they ended in time."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closing = True  # no job may be queued behind the stop markers
        for _ in self._workers:
            self._jobs.put(None)
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        stopped = not any(worker.is_alive() for worker in self._workers)
        self._workers.clear()
        return stopped or self.in_flight == 0  # idle workers yet to read their stop marker ran nothing

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
                self._pending -= 1
                self._busy += 1
            try:
                job()
            except PASS_THROUGH:
                raise
            except BaseException:  # jobs report their own errors; this is the last line of defence
                log.exception("a job in %s raised", self.name)
            finally:
                with self._lock:
                    self._busy -= 1
