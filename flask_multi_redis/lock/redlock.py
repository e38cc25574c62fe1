"""Redlock: a lock held on a majority of independent Redis servers, with a fencing token.

The algorithm is the one of the Redis documentation ("Distributed locks with Redis"): set the key with a random
value, ``NX`` and a TTL on every server; the lock is held when a majority said yes and the time that took,
plus an allowance for clock drift, leaves some of the TTL. Release and extension act only where the key still
holds this holder's value (a compare in a script, so that one holder never frees another's lock).

The fencing token is a number that grows with every acquisition: each server keeps the highest token it has
granted (``<key>:fence``); an acquisition reads them from the servers that granted it, takes the highest plus
one, and stores that on them. Any two majorities share a server, so a later holder always gets a higher
token, and a resource that remembers the highest token it has seen can refuse a holder whose lock expired.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import wait as _wait_for
from types import TracebackType
from typing import Any

import redis

from flask_multi_redis.errors import LockError, LockTimeout

__all__ = ["CLOCK_DRIFT", "Redlock"]

log = logging.getLogger(__name__)

#: The clock-drift allowance: this part of the TTL, plus 2 ms, is taken off the time a lock is known valid.
CLOCK_DRIFT = 0.01

# SET NX PX, then the server's fence: its highest token so far (nil: none yet).
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, redis.call('GET', KEYS[2]) or '0'}
end
return {0, '0'}
"""
# Store the token on a server that still holds our value, never lowering its fence.
_FENCE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end
  return 1
end
return 0
"""
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_EXTEND = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"

_pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="flask-redis-redlock")


class Redlock:
    """A lock named ``key`` on ``masters``: one Redis client, or a list of clients of independent servers (an
    odd number, typically 3 or 5; a majority must agree).

    :param ttl: seconds the lock lives unless extended or released.
    :param auto_renew: while held, extend it every third of ``ttl`` on a background thread; a renewal that
        fails (no majority) marks the lock lost (:attr:`lost`) and stops.
    :param timeout: how long ``with lock:`` waits for it, in seconds (None: for ever).
    :param retry_delay: the longest pause between two tries, in seconds (each pause is random up to it).
    """

    def __init__(
        self,
        key: str,
        masters: redis.Redis | Sequence[redis.Redis],
        ttl: float = 10.0,
        *,
        auto_renew: bool = False,
        timeout: float | None = None,
        retry_delay: float = 0.2,
    ) -> None:
        self.key = key
        self.masters: list[redis.Redis] = [masters] if isinstance(masters, redis.Redis) else list(masters)
        if not self.masters:
            raise ValueError("a Redlock needs at least one Redis server")
        if ttl <= 0:
            raise ValueError("ttl must be above 0 seconds")
        self.ttl = ttl
        self.auto_renew = auto_renew
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.quorum = len(self.masters) // 2 + 1
        self.token: int | None = None  #: the fencing token of the current holding, while held
        self.lost = False  #: an automatic renewal failed: the lock may be held by another now
        self._value: str | None = None
        self._valid_until = 0.0
        self._renewer: threading.Thread | None = None
        self._stop_renewing = threading.Event()
        self._scripts: dict[tuple[int, str], Any] = {}

    def __repr__(self) -> str:
        return f"<Redlock {self.key!r} on {len(self.masters)} server(s) held={self._value is not None}>"

    # --- acquiring ---------------------------------------------------------------------------------------------

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take the lock; True once held. Without ``blocking``, one try; else tries until ``timeout`` seconds
        (None: for ever) with random pauses. An instance holds the lock at most once at a time.

        :raises LockError: this instance holds it already.
        """
        if self._value is not None:
            raise LockError(f"the lock {self.key!r} is held by this instance already (release it first)")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._try(deadline):
                self._start_renewing()
                return True
            if not blocking:
                return False
            pause = random.uniform(0, self.retry_delay)  # noqa: S311 - spreads the contenders, no secret
            if deadline is not None:
                pause = min(pause, deadline - time.monotonic())
                if pause <= 0:
                    return False
            time.sleep(pause)

    def _try(self, deadline: float | None) -> bool:
        """One round: SET NX on every server, then the token on those that granted it; undone unless a
        majority held it with validity left. Servers that have not answered by ``deadline`` count as no."""
        value = secrets.token_hex(16)
        ttl_ms = int(self.ttl * 1000)
        started = time.monotonic()
        keys = [self.key, self._fence_key]
        granted = self._on_all(_ACQUIRE, keys, [value, ttl_ms], until=deadline, decided=self._decided)
        won = [(index, reply) for index, reply in granted.items() if isinstance(reply, list) and reply[0] == 1]
        if len(won) >= self.quorum:
            token = max(int(reply[1]) for _, reply in won) + 1
            winners = [index for index, _ in won]
            fenced = self._on_all(_FENCE, keys, [value, token], winners, until=deadline, decided=self._decided)
            validity = self.ttl - (time.monotonic() - started) - (self.ttl * CLOCK_DRIFT + 0.002)
            if sum(1 for reply in fenced.values() if reply == 1) >= self.quorum and validity > 0:
                self._value, self.token, self.lost = value, token, False
                self._valid_until = started + validity
                return True
        self._on_all(_RELEASE, [self.key], [value], wait=False)  # undo the partial holding, in the background
        return False

    # --- holding -----------------------------------------------------------------------------------------------

    def release(self) -> None:
        """Let go of the lock, on every server that still holds this instance's value.

        :raises LockError: this instance does not hold it.
        """
        value = self._value
        if value is None:
            raise LockError(f"the lock {self.key!r} is not held by this instance")
        self._stop_renewing.set()
        self._value, self.token = None, None
        self._on_all(_RELEASE, [self.key], [value])

    def extend(self, ttl: float | None = None) -> bool:
        """Give the held lock ``ttl`` seconds (its own ``ttl`` by default) from now; True when a majority
        agreed in time. False leaves it as it was: it may have expired."""
        value = self._value
        if value is None:
            raise LockError(f"the lock {self.key!r} is not held by this instance")
        ttl = self.ttl if ttl is None else ttl
        started = time.monotonic()
        replies = self._on_all(_EXTEND, [self.key], [value, int(ttl * 1000)], decided=self._decided)
        validity = ttl - (time.monotonic() - started) - (ttl * CLOCK_DRIFT + 0.002)
        if sum(1 for reply in replies.values() if reply == 1) >= self.quorum and validity > 0:
            self._valid_until = started + validity
            return True
        return False

    def locked(self) -> bool:
        """Whether the lock is held now, by this instance or any other (a majority of servers have the key)."""
        replies = self._on_all(None, [self.key], [])
        return sum(1 for reply in replies.values() if reply) >= self.quorum

    def owned(self) -> bool:
        """Whether this instance holds the lock and its validity has not run out."""
        return self._value is not None and not self.lost and time.monotonic() < self._valid_until

    def __enter__(self) -> Redlock:
        if not self.acquire(timeout=self.timeout):
            raise LockTimeout(f"the lock {self.key!r} was not acquired within {self.timeout} s")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._value is not None:
            self.release()

    # --- the servers -------------------------------------------------------------------------------------------

    @property
    def _fence_key(self) -> str:
        return f"{self.key}:fence"

    def _on_all(
        self,
        script: str | None,
        keys: list[str],
        args: list[Any],
        only: list[int] | None = None,
        *,
        until: float | None = None,
        wait: bool = True,
        decided: Callable[[dict[int, Any]], bool] | None = None,
    ) -> dict[int, Any]:
        """Run ``script`` (None: EXISTS of the first key) on every server (or those of ``only``), at once when
        there are several; each one's reply by index. A server that fails, or has not answered within half the
        TTL (or by ``until``), counts as a no; once ``decided`` says the replies so far settle it, the others are
        not waited for. Without ``wait``, the calls go on in the background."""
        indexes = list(range(len(self.masters))) if only is None else only
        calls: dict[int, Callable[[], Any]] = {i: self._call(i, script, keys, args) for i in indexes}
        if len(calls) == 1 and wait:
            ((index, call),) = calls.items()
            return _gathered({index: _run(call)})
        futures: dict[int, Future[Any]] = {index: _pool.submit(_run, call) for index, call in calls.items()}
        if not wait:
            return {}
        deadline = time.monotonic() + self.ttl / 2  # a server slower than this would leave too little validity
        if until is not None:
            deadline = min(deadline, until)
        index_of = {future: index for index, future in futures.items()}
        replies: dict[int, Any] = {}
        pending = set(futures.values())
        while pending and not (decided is not None and decided(_gathered(replies))):
            done, pending = _wait_for(
                pending, timeout=max(0.0, deadline - time.monotonic()), return_when=FIRST_COMPLETED
            )
            if not done:
                break  # the rest are too slow: they count as no
            replies.update((index_of[future], future.result()) for future in done)
        return _gathered(replies)

    def _decided(self, replies: dict[int, Any]) -> bool:
        """Whether a round's outcome is known: a majority said yes, or too many said no for one."""
        yes = sum(1 for reply in replies.values() if reply == 1 or (isinstance(reply, list) and reply[0] == 1))
        return yes >= self.quorum or len(replies) - yes > len(self.masters) - self.quorum

    def _call(self, index: int, script: str | None, keys: list[str], args: list[Any]) -> Callable[[], Any]:
        client = self.masters[index]
        if script is None:
            return lambda: client.exists(*keys)
        found = self._scripts.get((index, script))
        if found is None:  # EVALSHA, loading the script the first time a server lacks it
            found = self._scripts[(index, script)] = client.register_script(script)
        return lambda: found(keys, args)

    # --- automatic renewal -------------------------------------------------------------------------------------

    def _start_renewing(self) -> None:
        if not self.auto_renew:
            return
        self._stop_renewing = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name=f"redlock-renew-{self.key}", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        stop = self._stop_renewing
        while not stop.wait(self.ttl / 3):
            if self._value is None:
                return
            if not self.extend():
                self.lost = True
                log.warning("the lock %r could not be renewed on a majority: it may be held by another now", self.key)
                return


def _run(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except redis.RedisError as exc:  # a server down counts as a no
        log.debug("a Redlock server did not answer: %s", exc)
        return None


def _gathered(replies: dict[int, Any]) -> dict[int, Any]:
    """Replies with bytes made ints where they are numbers (scripts return the fence as a string)."""
    out: dict[int, Any] = {}
    for index, reply in replies.items():
        if isinstance(reply, list) and len(reply) == 2:
            reply = [int(reply[0]), int(reply[1])]
        out[index] = reply
    return out
