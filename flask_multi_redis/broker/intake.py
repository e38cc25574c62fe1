"""What arrives is read here: a message on a subscription, or a reply kept in a list. What does not parse is
logged (channel and reason, never the message itself) and counted as dropped; nothing is raised."""

from __future__ import annotations

import logging

from flask_multi_redis.errors import InvalidMessage

from .envelope import Envelope, unpack
from .health import Counters
from .signing import Signer

__all__ = ["Intake"]

log = logging.getLogger(__name__)


class Intake:
    """Parses received envelopes of at most ``max_message_size`` bytes (signed ones, when there is a ``signer``:
    an unsigned or wrongly signed one is dropped), counting what it drops in ``counters``."""

    def __init__(self, counters: Counters, max_message_size: int, signer: Signer | None = None) -> None:
        self.counters = counters
        self.max_message_size = max_message_size
        self.signer = signer

    def read(self, where: bytes, data: bytes) -> Envelope | None:
        """The envelope in ``data``, received on ``where``; None when it is dropped."""
        try:
            return unpack(data, self.max_message_size, self.signer)
        except InvalidMessage as exc:
            self.counters.count("dropped")
            log.warning("dropped a message on %s: %s", where.decode(errors="replace"), exc)
            return None

    def drop(self, envelope: Envelope, reason: str) -> None:
        """Drop a message that parsed but has no business here."""
        self.counters.count("dropped")
        log.warning("dropped %s id=%s channel=%s: %s", envelope.kind, envelope.id, envelope.channel, reason)
