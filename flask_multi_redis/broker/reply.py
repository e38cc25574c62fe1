"""One process's answer to a gathered broadcast."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from flask_multi_redis.errors import BrokerError

from .envelope import Sender

__all__ = ["Reply"]

Rep = TypeVar("Rep")


@dataclass(frozen=True)
class Reply(Generic[Rep]):
    """One process's answer to a gathered broadcast: its ``value`` when ``ok``, otherwise the ``error``.

    A process that received the broadcast but did not answer in time has ``sender=None`` and a
    :class:`~flask_multi_redis.RequestTimeout` as its error.
    """

    sender: Sender | None
    ok: bool
    value: Rep | None = None
    error: BrokerError | None = None
