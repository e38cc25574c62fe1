"""Signed messages: an HMAC-SHA256 of the whole envelope, appended as its last field (PROTOCOL.md, "Signing").

A signed envelope is the unsigned one with ``,"sig":"<64 lowercase hex digits>"`` written before its final
``}``: the signature covers the environment's prefix and every byte of the unsigned envelope (kind, id,
channel, reply_to, deadline, sender, headers and body alike), and a reader that does not sign ignores the field
as it ignores every unknown one. Keys rotate: the first of the configured keys signs, any of them is accepted.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from flask_multi_redis.errors import InvalidMessage

__all__ = ["Signer"]

_HEAD = b',"sig":"'
_TAIL = len(_HEAD) + 64 + 2  # the field, its 64 hex digits, the closing quote and brace


class _Mac:
    """HMAC-SHA256 (RFC 2104) with one key, of ``context`` followed by each message: the same digest as
    ``hmac.digest(key, context + message, "sha256")``, at about half the cost per message (the padded key and
    the context are hashed once)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes, context: bytes) -> None:
        if len(key) > 64:  # the block size: a longer key is hashed first
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in key))
        self._inner.update(context)
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in key))

    def hexdigest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest().encode()


class Signer:
    """Signs with ``keys[0]`` and accepts a signature made with any of ``keys`` (at least one), for the
    environment ``prefix``: what is signed is the prefix, a newline, then the message, so that a message copied
    to another environment that shares the key is refused there."""

    __slots__ = ("_count", "_macs")

    def __init__(self, keys: Sequence[bytes], prefix: str = "") -> None:
        if not keys:
            raise ValueError("a Signer needs at least one key")
        context = prefix.encode() + b"\n"
        self._macs = tuple(_Mac(key, context) for key in keys)
        self._count = len(keys)

    def __repr__(self) -> str:
        return f"<Signer with {self._count} key(s)>"  # never the keys

    def sign(self, envelope: bytes) -> bytes:
        """``envelope`` (a JSON object, as :func:`.envelope.pack` writes it) with its signature added."""
        return b"".join((envelope[:-1], _HEAD, self._macs[0].hexdigest(envelope), b'"}'))

    def verify(self, data: bytes) -> bytes:
        """The unsigned envelope of a signed one.

        :raises InvalidMessage: ``data`` is not signed, or not with one of the keys.
        """
        if len(data) < _TAIL or data[-_TAIL : -_TAIL + len(_HEAD)] != _HEAD or data[-2:] != b'"}':
            raise InvalidMessage("the message is not signed")
        unsigned = data[:-_TAIL] + b"}"
        mac = data[-66:-2]
        for key in self._macs:
            if hmac.compare_digest(key.hexdigest(unsigned), mac):
                return unsigned
        raise InvalidMessage("the message is not signed with this environment's key")
