"""Redlock, sync: a lock held on a majority of independent Redis servers (or on one), with a fencing token;
works in threads and under gevent. The algorithm and its decisions are in :mod:`.algorithm`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from types import TracebackType
from typing import Any

import redis
from redis.exceptions import RedisClusterException

from flask_multi_redis.errors import LockError, LockTimeout
from flask_multi_redis.forks import PerProcess

from .algorithm import ACQUIRE, EXTEND, FENCE, RELEASE, LockState, check_servers, checked_ttl, gathered

__all__ = ["Redlock"]

log = logging.getLogger(__name__)


#: The lock's calls run on this process's pool, made on first use: a forked child (gunicorn --preload,
#: multiprocessing) makes its own (its parent's counts idle threads the child does not have, and would never run a
#: call), after gevent has patched it, so that its queue is gevent's.
_pool = PerProcess(lambda: ThreadPoolExecutor(max_workers=32, thread_name_prefix="flask-redis-redlock"))


Server = redis.Redis | redis.RedisCluster


class Redlock(LockState[Server]):
    """A lock named ``key`` on ``masters``: one Redis client (a session, a cluster session), or a list of clients
    of independent servers (an odd number, typically 3 or 5; a majority must agree).

    :param ttl: seconds the lock lives unless extended or released.
    :param auto_renew: while held, extend it every third of ``ttl`` on a background thread; a renewal that
        fails (no majority) marks the lock lost (:attr:`lost`) and stops.
    :param timeout: how long ``with lock:`` waits for it, in seconds (None: for ever).
    :param retry_delay: the longest pause between two tries, in seconds (each pause is random up to it).
    """

    def __init__(
        self,
        key: str,
        masters: Server | Sequence[Server],
        ttl: float = 10.0,
        *,
        auto_renew: bool = False,
        timeout: float | None = None,
        retry_delay: float = 0.2,
    ) -> None:
        servers = [masters] if isinstance(masters, (redis.Redis, redis.RedisCluster)) else list(masters)
        check_servers(servers, (redis.Redis, redis.RedisCluster), "flask_multi_redis.lock.asyncio.Redlock")
        super().__init__(key, servers, ttl, auto_renew, timeout, retry_delay)
        self._stop_renewing = threading.Event()
        self._scripts: dict[tuple[int, str], Any] = {}
        self._late: set[Future[Any]] = set()  # the last round's calls still on their way
        self._held_late: set[Future[Any]] = set()  # those of the rounds that took the lock held now

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock; True once held. Without ``blocking``, one try; else tries until ``timeout`` seconds
        (None: for ever) with random pauses; a ``timeout`` of 0 or less is one try, as without ``blocking``. An
        instance holds the lock at most once at a time.

        :raises LockError: this instance holds it already.
        """
        blocking, deadline = self.tries(blocking, timeout)
        while True:
            if self._try(deadline):
                self._start_renewing()
                return True
            pause = self.pause(deadline) if blocking else None
            if pause is None:
                return False
            time.sleep(pause)

    def _try(self, deadline: float | None) -> bool:
        """One round: SET NX on every server, then the token on those that granted it; undone unless a
        majority held it with validity left. Servers that have not answered by ``deadline`` count as no."""
        value = self.new_value()
        started = time.monotonic()
        granted = self._on_all(ACQUIRE, self.keys, self.acquire_args(value), until=deadline)
        late = self._late
        winners = self.winners(granted)
        if winners:
            token = self.next_token(granted, winners)
            fenced = granted if self.alone else self._on_all(FENCE, self.keys, [value, token], winners, until=deadline)
            late = late | self._late
            valid_for = self.validity(self.ttl, started)
            if self.winners(fenced) and valid_for > 0:
                self.take(value, token, valid_for)
                self._held_late = late  # a release goes after them too: one landing after it would keep the key
                return True
        _pool.get().submit(self._undo, value, late)  # undo the partial holding, in the background
        return False

    def _undo(self, value: str, late: set[Future[Any]]) -> None:
        """Release ``value`` everywhere, once the tries still on their way have landed (or the TTL passed)."""
        if late:
            wait_for(late, timeout=self.ttl)
        self._on_all(RELEASE, [self.key], [value], wait=False)

    def release(self) -> None:
        """Let go of the lock, on every server that still holds this instance's value.

        :raises LockError: this instance does not hold it.
        """
        value = self.give_up()
        self._stop_renewing.set()
        self._on_all(RELEASE, [self.key], [value])
        late, self._held_late = self._held_late, set()
        if late and not all(call.done() for call in late):  # the acquisition's calls still on their way
            _pool.get().submit(self._undo, value, late)

    def extend(self, ttl: float | None = None) -> bool:
        """Give the held lock ``ttl`` seconds (its own ``ttl`` by default) from now; True when a majority
        agreed in time. False: it may have expired, and :meth:`owned` counts it valid no longer than the shorter
        of what it had and ``ttl`` (some servers may have taken the new TTL).

        :raises LockError: this instance does not hold it.
        :raises ValueError: ``ttl`` is not a finite number of at least ``SHORTEST_TTL`` (10 ms).
        """
        value, ttl = self.held_value(), self.ttl if ttl is None else checked_ttl(ttl)
        started = time.monotonic()
        replies = self._on_all(EXTEND, [self.key], [value, int(ttl * 1000)])
        return self.extended(self.validity(ttl, started), bool(self.winners(replies)))

    def locked(self) -> bool:
        """Whether the lock is held now, by this instance or any other (a majority of servers have the key)."""
        return self.held(self._on_all(None, [self.key], []))

    def __enter__(self) -> Redlock:
        if not self.acquire(timeout=self.timeout):
            raise LockTimeout(f"the lock {self.key!r} was not acquired within {self.timeout} s")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._value is not None:
            self.release()

    def _on_all(
        self,
        script: str | None,
        keys: list[str],
        args: list[Any],
        only: list[int] | None = None,
        *,
        until: float | None = None,
        wait: bool = True,
    ) -> dict[int, Any]:
        """Run ``script`` (None: EXISTS of the first key) on every server (or those of ``only``), at once when
        there are several; each one's reply by index. A server that fails, or has not answered within half the
        TTL (or by ``until``), counts as a no; once the replies so far decide the round, the others are not
        waited for. Without ``wait``, the calls go on in the background."""
        indexes = list(range(len(self.masters))) if only is None else only
        calls: dict[int, Callable[[], Any]] = {i: self._call(i, script, keys, args) for i in indexes}
        if len(calls) == 1 and wait:  # one server: no thread; its client's socket timeout bounds the call
            ((index, call),) = calls.items()
            self._late = set()
            return gathered({index: _run(call)})
        futures: dict[int, Future[Any]] = {index: _pool.get().submit(_run, call) for index, call in calls.items()}
        if not wait:
            return {}
        deadline = time.monotonic() + self.ttl / 2  # a server slower than this would leave too little validity
        if until is not None:
            deadline = min(deadline, until)
        index_of = {future: index for index, future in futures.items()}
        replies: dict[int, Any] = {}
        pending = set(futures.values())
        while pending and not (script is not None and self.decided(gathered(replies))):
            done, pending = wait_for(
                pending, timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_COMPLETED
            )
            if not done:
                break  # the rest are too slow: they count as no
            replies.update((index_of[future], future.result()) for future in done)
        self._late = pending  # not waited for: an undo waits for them
        return gathered(replies)

    def _call(self, index: int, script: str | None, keys: list[str], args: list[Any]) -> Callable[[], Any]:
        client = self.masters[index]
        if script is None:
            return lambda: client.exists(*keys)
        found = self._scripts.get((index, script))
        if found is None:  # EVALSHA, loading the script the first time a server lacks it
            found = self._scripts[(index, script)] = client.register_script(script)
        return lambda: found(keys, args)

    def _start_renewing(self) -> None:
        if not self.auto_renew:
            return
        self._stop_renewing = threading.Event()
        threading.Thread(target=self._renew, name=f"redlock-renew-{self.key}", daemon=True).start()

    def _renew(self) -> None:
        stop, value = self._stop_renewing, self._value
        while not stop.wait(self.ttl / 3):
            try:
                renewed = self.extend()
            except LockError:  # released meanwhile
                return
            except Exception:  # not renewed, whatever the reason: the holder must hear of it
                log.exception("renewing the lock %r failed", self.key)
                renewed = False
            if not renewed:
                if stop.is_set() or self._value != value:  # released, or taken anew, while it extended
                    return
                self.lost = True
                log.warning("the lock %r could not be renewed on a majority: it may be held by another now", self.key)
                return


def _run(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except (redis.RedisError, RedisClusterException) as exc:  # a server (or a whole cluster) down counts as a no
        log.debug("a Redlock server did not answer: %s", exc)
        return None
