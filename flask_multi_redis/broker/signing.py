"""Signed messages: an HMAC-SHA256 of the whole envelope, appended as its last field (PROTOCOL.md, "Signing").

A signed envelope is the unsigned one with ``,"sig":"<64 lowercase hex digits>"`` written before its final
``}``: the signature covers every byte of the unsigned envelope (kind, id, channel, reply_to, deadline, sender,
headers and body alike), and a reader that does not sign ignores the field as it ignores every unknown one.
Keys rotate: the first of the configured keys signs, any of them is accepted.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from flask_multi_redis.errors import InvalidMessage

__all__ = ["Signer"]

_HEAD = b',"sig":"'
_TAIL = len(_HEAD) + 64 + 2  # the field, its 64 hex digits, the closing quote and brace


class Signer:
    """Signs with ``keys[0]`` and accepts a signature made with any of ``keys`` (at least one)."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a Signer needs at least one key")
        self._keys = tuple(keys)

    def __repr__(self) -> str:
        return f"<Signer with {len(self._keys)} key(s)>"  # never the keys

    def sign(self, envelope: bytes) -> bytes:
        """``envelope`` (a JSON object, as :func:`.envelope.pack` writes it) with its signature added."""
        mac = hmac.digest(self._keys[0], envelope, "sha256").hex().encode()
        return b"".join((envelope[:-1], _HEAD, mac, b'"}'))

    def verify(self, data: bytes) -> bytes:
        """The unsigned envelope of a signed one.

        :raises InvalidMessage: ``data`` is not signed, or not with one of the keys.
        """
        if len(data) < _TAIL or data[-_TAIL : -_TAIL + len(_HEAD)] != _HEAD or data[-2:] != b'"}':
            raise InvalidMessage("the message is not signed")
        unsigned = data[:-_TAIL] + b"}"
        mac = data[-66:-2]
        for key in self._keys:
            if hmac.compare_digest(hmac.digest(key, unsigned, "sha256").hex().encode(), mac):
                return unsigned
        raise InvalidMessage("the message is not signed with this environment's key")
