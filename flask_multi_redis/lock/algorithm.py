"""What the sync and asyncio Redlocks share: the scripts each server runs, and every decision made from the
servers' replies (quorum, validity, the fencing token), with no I/O.

The algorithm is the one of the Redis documentation ("Distributed locks with Redis"): set the key with a random
value, ``NX`` and a TTL on every server; the lock is held when a majority said yes and the time that took,
plus an allowance for clock drift, leaves some of the TTL. Release and extension act only where the key still
holds this holder's value (a compare in a script, so that one holder never frees another's lock).

The fencing token is a number that grows with every acquisition: each server keeps the highest token it has
granted (``{<key>}:fence``, in the key's cluster slot); an acquisition reads them from the servers that granted
it, takes the highest plus one, and stores that on them. Any two majorities share a server, so a later holder
always gets a higher token, and a resource that remembers the highest token it has seen can refuse a holder
whose lock expired. On one server there is no majority to read: its acquire script takes the token (INCR) in
the same step, so a lock on one server costs one round trip to acquire, as one without a token would.
"""

from __future__ import annotations

import math
import random
import secrets
import time
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from flask_multi_redis.cluster import companion_key
from flask_multi_redis.errors import LockError

__all__ = [
    "ACQUIRE",
    "CLOCK_DRIFT",
    "EXTEND",
    "FENCE",
    "RELEASE",
    "SHORTEST_TTL",
    "LockState",
    "check_servers",
    "checked_ttl",
    "gathered",
]

#: The clock-drift allowance: this part of the TTL, plus 2 ms, is taken off the time a lock is known valid.
CLOCK_DRIFT = 0.01

#: The shortest TTL, in seconds: below about 2 ms the drift allowance alone would leave no validity.
SHORTEST_TTL = 0.01

#: SET NX PX, then the server's fence: its highest token so far ('0': none yet), or with ARGV[3] '1' (the lock's
#: only server) the next token, taken at once. A try sent again (a client that retries after a lost reply) finds
#: its own value and says yes again.
ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) or redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[3] == '1' then return {1, redis.call('INCR', KEYS[2])} end
  return {1, redis.call('GET', KEYS[2]) or '0'}
end
return {0, '0'}
"""
#: Store the token on a server that still holds our value, never lowering its fence.
FENCE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if tonumber(redis.call('GET', KEYS[2]) or '0') < tonumber(ARGV[2]) then redis.call('SET', KEYS[2], ARGV[2]) end
  return 1
end
return 0
"""
RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
EXTEND = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"

Client = TypeVar("Client")


class LockState(Generic[Client]):
    """A Redlock's settings and state, and the decisions it makes from replies (by server index)."""

    def __init__(
        self,
        key: str,
        masters: Sequence[Client],
        ttl: float,
        auto_renew: bool,
        timeout: float | None,
        retry_delay: float,
    ) -> None:
        if not masters:
            raise ValueError("a Redlock needs at least one Redis server")
        checked_ttl(ttl)
        if not (isinstance(retry_delay, (int, float)) and 0 <= retry_delay < math.inf):
            raise ValueError(f"retry_delay must be a finite number of seconds, 0 or more, not {retry_delay!r}")
        self.key = key
        self.masters = list(masters)
        self.ttl = ttl
        self.auto_renew = auto_renew
        self.timeout = timeout
        self.retry_delay = retry_delay
        self.quorum = len(self.masters) // 2 + 1
        self.alone = len(self.masters) == 1  #: one server: its acquire takes the token, with no second round
        self.token: int | None = None  #: the fencing token of the current holding, while held
        self.lost = False  #: an automatic renewal failed: the lock may be held by another now
        self._value: str | None = None
        self._valid_until = 0.0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key!r} on {len(self.masters)} server(s) held={self._value is not None}>"

    @property
    def keys(self) -> list[str]:
        """The lock's key and its fence's."""
        return [self.key, companion_key(self.key, "fence")]

    def acquire_args(self, value: str) -> list[Any]:
        """The acquire script's arguments for a try with ``value``."""
        return [value, int(self.ttl * 1000), int(self.alone)]

    def next_token(self, replies: dict[int, Any], winners: list[int]) -> int:
        """The token of a new holding: the one server's own, or the highest fence among ``winners`` plus one
        (stored on them by the fence round)."""
        highest = max(int(replies[index][1]) for index in winners)
        return highest if self.alone else highest + 1

    def owned(self) -> bool:
        """Whether this instance holds the lock and its validity has not run out."""
        return self._value is not None and not self.lost and time.monotonic() < self._valid_until

    def decided(self, replies: dict[int, Any]) -> bool:
        """Whether a round's outcome is known: a majority said yes, or too many said no for one."""
        yes = sum(1 for reply in replies.values() if _yes(reply))
        return yes >= self.quorum or len(replies) - yes > len(self.masters) - self.quorum

    def winners(self, replies: dict[int, Any]) -> list[int]:
        """The servers that said yes; a majority or none."""
        found = [index for index, reply in replies.items() if _yes(reply)]
        return found if len(found) >= self.quorum else []

    def tries(self, blocking: bool, timeout: float | None) -> tuple[bool, float | None]:
        """Whether ``acquire(blocking, timeout)`` tries again after a first try, and its monotonic deadline: a
        ``timeout`` of 0 or less is one try, as without ``blocking`` (a try begun at its deadline could not wait
        for its replies)."""
        if timeout is not None and timeout <= 0:
            return False, None
        return blocking, None if timeout is None else time.monotonic() + timeout

    def pause(self, deadline: float | None) -> float | None:
        """How long to wait before the next try (random, up to ``retry_delay``, spreading the contenders), or
        None when ``deadline`` leaves no time for one."""
        pause = random.uniform(0, self.retry_delay)  # noqa: S311 - no secret
        if deadline is None:
            return pause
        left = deadline - time.monotonic()
        return min(pause, left) if left > 0 else None

    def held(self, exists: dict[int, Any]) -> bool:
        """Whether a majority of servers have the key (EXISTS replies by server): the lock is held, by anyone."""
        return sum(1 for reply in exists.values() if reply) >= self.quorum

    def validity(self, ttl: float, started: float) -> float:
        """Seconds from now that a holding begun at ``started`` is known valid: the TTL less the time taken and
        the drift."""
        return ttl - (time.monotonic() - started) - (ttl * CLOCK_DRIFT + 0.002)

    def new_value(self) -> str:
        """A check before a try, and the random value that try sets.

        :raises LockError: this instance holds the lock already.
        """
        if self._value is not None:
            raise LockError(f"the lock {self.key!r} is held by this instance already (release it first)")
        return secrets.token_hex(16)

    def take(self, value: str, token: int, valid_for: float) -> None:
        """Hold the lock with ``value``, known valid for ``valid_for`` seconds from now (see :meth:`validity`)."""
        self._value, self.token, self.lost = value, token, False
        self._valid_until = time.monotonic() + valid_for

    def give_up(self) -> str:
        """Forget the holding; its value, for the release.

        :raises LockError: this instance does not hold the lock.
        """
        value = self.held_value()
        self._value, self.token = None, None
        return value

    def held_value(self) -> str:
        """:raises LockError: this instance does not hold the lock."""
        if self._value is None:
            raise LockError(f"the lock {self.key!r} is not held by this instance")
        return self._value

    def extended(self, valid_for: float, agreed: bool) -> bool:
        """After an extension known valid for ``valid_for`` seconds from now: whether it holds (a majority
        ``agreed`` and there is validity left). When it does not, the new TTL may still have reached some servers
        (or all, too late), so the holding is known valid no longer than the shorter of the two."""
        until = time.monotonic() + valid_for
        if agreed and valid_for > 0:
            self._valid_until = until
            return True
        self._valid_until = min(self._valid_until, until)
        return False


def check_servers(servers: Sequence[object], kinds: tuple[type, ...], lock: str) -> None:
    """Refuse a client of the other kind (an asyncio client's calls would come back as coroutines never awaited,
    each counted as a no, so the lock would never be taken, without a word).

    :raises TypeError: naming the Redlock to use instead.
    """
    for server in servers:
        if not isinstance(server, kinds):
            raise TypeError(f"a {type(server).__name__} is not a client for this Redlock: use {lock}")


def checked_ttl(ttl: float) -> float:
    """``ttl``, when a lock can be held for it (some of it is left after the drift allowance).

    :raises ValueError: it is not a finite number of at least :data:`SHORTEST_TTL` seconds.
    """
    if not (isinstance(ttl, (int, float)) and SHORTEST_TTL <= ttl < math.inf):
        raise ValueError(f"ttl must be a finite number of at least {SHORTEST_TTL} seconds, not {ttl!r}")
    return ttl


def gathered(replies: dict[int, Any]) -> dict[int, Any]:
    """Replies with the acquire script's pairs made ints (it returns the fence as a string)."""
    out: dict[int, Any] = {}
    for index, reply in replies.items():
        if isinstance(reply, list) and len(reply) == 2:
            reply = [int(reply[0]), int(reply[1])]
        out[index] = reply
    return out


def _yes(reply: Any) -> bool:
    return reply == 1 or (isinstance(reply, list) and reply[0] == 1)
