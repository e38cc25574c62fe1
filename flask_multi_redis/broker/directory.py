"""Where a request goes: the live responders of its channel, from the registry, each asked in turn."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import redis

from flask_multi_redis.connection import describe
from flask_multi_redis.errors import BrokerUnavailable

from . import names, registry
from .pipeline import PipelinedConnection
from .signing import Signer

__all__ = ["MAX_DIRECT_TRIES", "ResponderDirectory"]

#: How many registered responders a request is offered to, each on its own inbox, before the shared channel.
MAX_DIRECT_TRIES = 3


class ResponderDirectory:
    """The processes that serve each channel, read from the registry and trusted for ``cache`` seconds; a
    responder that a request did not reach is forgotten until the next read. With a ``signer``, only those
    whose heartbeat record is signed."""

    def __init__(self, pipelined: PipelinedConnection, prefix: str, cache: float, signer: Signer | None = None) -> None:
        self._pipelined = pipelined
        self._prefix = prefix
        self._cache = cache
        self._signer = signer
        self._known: dict[str, tuple[float, list[str]]] = {}  # channel -> (trusted until, responder ids)
        self._listed: dict[str, bool] = {}  # channel -> whether the registry's last read listed any responder
        self._rotation = itertools.count()

    def targets(
        self, channel: str, avoid: frozenset[str], deadline: float | None = None
    ) -> Iterator[tuple[str, str | None]]:
        """Where a request on ``channel`` goes, in order, with the responder each one is: up to MAX_DIRECT_TRIES
        live responders (not those to ``avoid``) on their own inboxes, starting with the next one in turn, then
        the shared request channel, whose subscribers race for a claim (no responder: None). A registry full of
        members that receive nothing costs a request a few publishes, no more."""
        tries = 0
        for responder in self._responders(channel, deadline):
            if responder not in avoid:
                yield names.inbox_channel(self._prefix, responder), responder
                tries += 1
                if tries == MAX_DIRECT_TRIES:
                    break
        yield names.request_channel(self._prefix, channel), None

    def refresh(self, channel: str) -> None:
        """Read ``channel``'s responders from the registry at the next use."""
        self._known.pop(channel, None)

    def forget(self, channel: str, responder: str) -> None:
        """``responder`` did not receive a request on ``channel``: skip it until the registry is read again."""
        known = self._known.get(channel)
        if known is not None and responder in known[1]:
            self._known[channel] = (known[0], [other for other in known[1] if other != responder])

    def registered(self, channel: str) -> bool:
        """Whether the registry's last read listed responders of ``channel`` (those forgotten since included):
        a request that reached none of them may find one back after a reconnect."""
        return self._listed.get(channel, False)

    def _responders(self, channel: str, deadline: float | None) -> list[str]:
        now = time.monotonic()
        known = self._known.get(channel)
        if known is None or known[0] < now:
            try:
                ids = registry.responder_ids(self._pipelined, self._prefix, channel, deadline)
                if self._signer is not None:  # only processes that sign their records
                    ids = registry.signed_responders(
                        self._pipelined, self._prefix, channel, ids, self._signer, deadline
                    )
            except redis.RedisError as exc:
                raise BrokerUnavailable(f"could not read the responders of {channel!r}: {describe(exc)}") from exc
            known = (now + self._cache, ids)
            self._known[channel] = known
            self._listed[channel] = bool(ids)
        ids = known[1]
        if len(ids) < 2:
            return list(ids)
        start = next(self._rotation) % len(ids)
        return ids[start:] + ids[:start]
