"""What a process's broker reports of itself: counters of the messages it received, and a health snapshot."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from .envelope import Sender
from .listener import ListenerHealth

__all__ = ["BrokerHealth", "Counters", "MinuteSummary"]

log = logging.getLogger(__name__)

COUNTED = ("handled", "failed", "expired", "dropped", "overloaded")


@dataclass
class Counters:
    """What this process's broker has done with the messages it received."""

    handled: int = 0
    failed: int = 0
    expired: int = 0
    dropped: int = 0
    overloaded: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)


@dataclass(frozen=True)
class BrokerHealth:
    """The broker's state in this process.

    :param in_flight: handlers running or queued.
    :param waiting_calls: this process's requests and gathered broadcasts waiting for their replies.
    :param draining: the process has left the registry and refuses new work (it is stopping).
    """

    sender: Sender
    listener: ListenerHealth
    counters: Counters
    in_flight: int
    waiting_calls: int
    draining: bool = False


class MinuteSummary:
    """Logs at INFO, once a minute, what the broker did with the messages it received in that minute (nothing
    for a quiet minute)."""

    def __init__(self, name: str, counters: Counters, every: float = 60.0) -> None:
        self._name = name
        self._counters = counters
        self._every = every
        self._since = time.monotonic()
        self._last = dict.fromkeys(COUNTED, 0)

    def tick(self) -> None:
        """Log the summary when a minute has passed since the last one (called by the heartbeat)."""
        if time.monotonic() - self._since < self._every:
            return
        now = {name: getattr(self._counters, name) for name in COUNTED}
        spent = {name: now[name] - self._last[name] for name in COUNTED}
        self._since, self._last = time.monotonic(), now
        if any(spent.values()):
            log.info("broker %s, last minute: %s", self._name, ", ".join(f"{n} {c}" for n, c in spent.items()))
