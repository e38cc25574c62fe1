"""The message broker: typed channels, commands broadcast to every process, request/reply with one handler."""

from __future__ import annotations

from flask_multi_redis.errors import (
    BrokerError,
    BrokerUnavailable,
    InvalidMessage,
    MessageTooLarge,
    NoResponders,
    Overloaded,
    RemoteError,
    RemoteInvalidMessage,
    RequestTimeout,
    ShuttingDown,
)

from .broker import Broker, Reply
from .channel import Channel
from .envelope import Sender
from .health import BrokerHealth
from .listener import Listener, ListenerHealth
from .router import Router

__all__ = [
    "Broker",
    "BrokerError",
    "BrokerHealth",
    "BrokerUnavailable",
    "Channel",
    "InvalidMessage",
    "Listener",
    "ListenerHealth",
    "MessageTooLarge",
    "NoResponders",
    "Overloaded",
    "RemoteError",
    "RemoteInvalidMessage",
    "Reply",
    "RequestTimeout",
    "Router",
    "Sender",
    "ShuttingDown",
]
