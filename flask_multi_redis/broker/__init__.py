"""The message broker, built on RedisSession. In progress: so far the per-process pub/sub listener."""

from __future__ import annotations

from .listener import Listener, ListenerHealth

__all__ = ["Listener", "ListenerHealth"]
