"""What a process's broker reports of itself: counters of the messages it received, and a health snapshot."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .envelope import Sender
from .listener import ListenerHealth

__all__ = ["BrokerHealth", "Counters"]


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
    """

    sender: Sender
    listener: ListenerHealth
    counters: Counters
    in_flight: int
    waiting_calls: int
