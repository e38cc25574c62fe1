"""Every raw command the broker sends on the connections it speaks to directly, spelt in one place.

:mod:`.names` builds the keys and channels these commands act on; PROTOCOL.md says what each is for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from flask_multi_redis.direct import Command

__all__ = [
    "CLASSIC",
    "SHARDED",
    "Verbs",
    "answer",
    "claim",
    "claim_again",
    "claimed_by",
    "counted_publish",
    "discard",
    "keep",
    "leave",
    "ping",
    "publish",
    "publish_and_wait",
    "receivers",
    "records",
    "renew",
    "responders",
    "subscribe",
    "take_lists",
    "taken_lists",
    "unlink",
    "unsubscribe",
    "wait_on_list",
]


@dataclass(frozen=True)
class Verbs:
    """The pub/sub commands the broker sends and the kinds of message they bring back: classic pub/sub, or
    sharded pub/sub (``SPUBLISH``, ``SSUBSCRIBE``: on a Redis Cluster a message stays within its shard)."""

    publish: str
    numsub: str
    subscribe: str
    unsubscribe: str
    message: bytes
    subscribed: bytes
    unsubscribed: bytes


CLASSIC = Verbs("PUBLISH", "NUMSUB", "SUBSCRIBE", "UNSUBSCRIBE", b"message", b"subscribe", b"unsubscribe")
SHARDED = Verbs("SPUBLISH", "SHARDNUMSUB", "SSUBSCRIBE", "SUNSUBSCRIBE", b"smessage", b"ssubscribe", b"sunsubscribe")


def publish(channel: str, data: bytes, verbs: Verbs = CLASSIC) -> Command:
    return (verbs.publish, channel, data)


def counted_publish(channel: str, data: bytes, verbs: Verbs = CLASSIC) -> list[Command]:
    """PUBLISH, with PUBSUB NUMSUB of the channel before it, in one transaction: PUBLISH also counts the clients
    whose pattern matches (``PSUBSCRIBE prefix:*``: a dashboard, a log shipper), which never answer; NUMSUB
    counts the channel's own subscribers, and MULTI/EXEC makes it count them at the same moment (without it, a
    large message lets the server serve other clients while it reads the PUBLISH). :func:`receivers` reads
    the replies."""
    return [("MULTI",), ("PUBSUB", verbs.numsub, channel), (verbs.publish, channel, data), ("EXEC",)]


def receivers(replies: Sequence[object]) -> int:
    """How many of the channel's own subscribers a :func:`counted_publish` reached, from the replies to its
    commands; an error reply is raised: the one that names the cause (a command Redis refused to queue, such as
    OOM when memory is full, rather than the EXECABORT that follows it)."""
    executed = replies[-1]
    if isinstance(executed, Exception):
        refused = [reply for reply in replies[:-1] if isinstance(reply, Exception)]
        raise refused[0] if refused else executed
    if not isinstance(executed, list) or len(executed) != 2:
        raise redis.ResponseError("the transaction that publishes was aborted")
    numsub, published = executed
    for reply in (numsub, published):
        if isinstance(reply, Exception):
            raise reply
    return int(numsub[1]) if isinstance(numsub, list) and len(numsub) == 2 else 0


def unlink(keys: Sequence[str]) -> list[Command]:
    """Delete ``keys`` (no command at all for none)."""
    return [("UNLINK", *keys)] if keys else []


def wait_on_list(key: str, seconds: float) -> Command:
    """Wait up to ``seconds`` for the list ``key`` to have an element, and return its last one. BLMOVE from the
    list onto itself returns it without taking it out: a lost connection loses nothing."""
    return ("BLMOVE", key, key, "RIGHT", "RIGHT", round(seconds, 3))


def publish_and_wait(
    unlinked: Sequence[str], channel: str, data: bytes, key: str, seconds: float, verbs: Verbs = CLASSIC
) -> list[Command]:
    """The one write of a call that waits on its own reply list: delete finished reply lists, publish the
    request (counted: see :func:`counted_publish`), and wait on the call's reply list (see
    :func:`wait_on_list`)."""
    waiting = ("BLMOVE", key, key, "RIGHT", "RIGHT", round(seconds, 3))
    counted = [("MULTI",), ("PUBSUB", verbs.numsub, channel), (verbs.publish, channel, data), ("EXEC",), waiting]
    return [("UNLINK", *unlinked), *counted] if unlinked else counted


def claim(key: str, owner: str, ttl_ms: int) -> Command:
    """Take a request for ``owner``, unless another process has: ``OK``, or nil."""
    return ("SET", key, owner, "NX", "PX", ttl_ms)


def claim_again(key: str, owner: str, ttl_ms: int) -> list[Command]:
    """:func:`claim` once more when the first claim's reply was lost (it may have been made), and read who has
    the request: :func:`claimed_by` reads the replies. (``SET NX GET`` would do both, from Redis 7.0 on.)"""
    return [claim(key, owner, ttl_ms), ("GET", key)]


def claimed_by(replies: Sequence[object], owner: str) -> bool:
    """Whether ``owner`` has the request, from the replies to :func:`claim_again` (read with errors among
    them): the GET decides, as the SET may be refused (``OOM``) while another process holds the claim; a GET
    refused too says no."""
    holder = replies[1]
    return not isinstance(holder, Exception) and holder == owner.encode()


def take_lists(keys: Sequence[str]) -> list[Command]:
    """Read the lists ``keys`` and delete them, in one transaction; :func:`taken_lists` reads EXEC's reply."""
    inner = [command for key in keys for command in (("LRANGE", key, 0, -1), ("DEL", key))]
    return [("MULTI",), *inner, ("EXEC",)]


def taken_lists(executed: object) -> list[list[bytes]]:
    """The lists a :func:`take_lists` read, from EXEC's reply (an error reply is raised)."""
    if isinstance(executed, Exception):
        raise executed
    if not isinstance(executed, list):
        raise redis.ResponseError("the transaction that reads reply lists was aborted")
    return [list(found) if isinstance(found, list) else [] for found in executed[0::2]]


def discard(key: str, value: bytes, count: int = 1) -> Command:
    """Take ``count`` copies of ``value`` out of the list ``key`` (0: every one)."""
    return ("LREM", key, count, value)


def keep(key: str, value: bytes, ttl_ms: int) -> list[Command]:
    """Append ``value`` to the list ``key``, which then lives ``ttl_ms`` milliseconds."""
    return [("RPUSH", key, value), ("PEXPIRE", key, ttl_ms)]


def answer(key: str, data: bytes, ttl_ms: int, reply_to: str | None, verbs: Verbs = CLASSIC) -> list[Command]:
    """Keep an answer in its reply list, then publish it to the caller's inbox when it has one."""
    return [*keep(key, data, ttl_ms), publish(reply_to, data, verbs)] if reply_to else keep(key, data, ttl_ms)


def renew(
    process_key: str,
    record: bytes,
    ttl_ms: int,
    serves_keys: Iterable[str],
    member: str,
    now_ms: int,
    longest_ms: int,
) -> list[Command]:
    """A heartbeat: the process's record, and its place in each sorted set of the channels it serves (scored by
    the record's expiry), from which expired members are trimmed, and any scored more than ``longest_ms``
    ahead (no heartbeat wrote those)."""
    commands: list[Command] = [("SET", process_key, record, "PX", ttl_ms)]
    for key in serves_keys:
        commands += [
            ("ZADD", key, now_ms + ttl_ms, member),
            ("ZREMRANGEBYSCORE", key, "-inf", now_ms),
            ("ZREMRANGEBYSCORE", key, f"({now_ms + longest_ms}", "+inf"),
            ("PEXPIRE", key, ttl_ms),
        ]
    return commands


def leave(process_key: str, serves_keys: Iterable[str], member: str) -> list[Command]:
    """Take a process out of the registry at once."""
    return [("DEL", process_key), *(("ZREM", key, member) for key in serves_keys)]


def responders(serves_key: str, now_ms: int, latest_ms: int, limit: int = 64) -> Command:
    """At most ``limit`` members of a channel's sorted set whose heartbeat has not expired, and does not expire
    after ``latest_ms``."""
    return ("ZRANGEBYSCORE", serves_key, now_ms, latest_ms, "LIMIT", 0, limit)


def records(process_keys: Iterable[str]) -> Command:
    """The heartbeat records of these processes (nil for those that have none)."""
    return ("MGET", *process_keys)


def subscribe(channels: Iterable[bytes], verbs: Verbs = CLASSIC) -> Command:
    return (verbs.subscribe, *channels)


def unsubscribe(channels: Iterable[bytes], verbs: Verbs = CLASSIC) -> Command:
    """Leave ``channels``; every channel when there are none."""
    return (verbs.unsubscribe, *channels)


def ping() -> Command:
    return ("PING",)
