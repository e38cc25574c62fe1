"""Connections that follow their data: to the primary its sentinels name, or to the primary that owns a slot
of a Redis Cluster, through failovers and slot migrations.

redis-py's Sentinel-managed connections ask the sentinels at each connect and take ``READONLY`` for a demoted
primary; :class:`ShardConnection` does the same on a cluster, asking the cluster's slot map, and takes ``MOVED``
and ``ASK`` for a slot that moved. :class:`FollowedPrimary` tells, for a connection that stays open, whether
what it follows is elsewhere now.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import redis
from redis.connection import AbstractConnection, Connection, SSLConnection
from redis.exceptions import AskError, RedisClusterException

__all__ = ["FollowedPrimary", "ShardConnection", "followed", "refresh_slots", "shard_pool"]

log = logging.getLogger(__name__)

Address = tuple[str, int]

#: What says that a cluster's slot map could not be read: its nodes are unreachable or disagree.
UNREADABLE = (redis.ConnectionError, redis.TimeoutError, RedisClusterException)


@dataclass(frozen=True)
class FollowedPrimary:
    """Where a connection was opened, and a way to learn where the primary it follows is now."""

    where: Callable[[bool], Address | None]  # as last learnt; with True, asked anew (sentinels, slot map)
    address: Address
    #: Whether a subscriber must ask now and then: a primary demoted by its sentinels tells its subscribers
    #: nothing, while a cluster node that loses a slot unsubscribes them from its shard channels.
    watch: bool = True

    def moved(self, ask: bool = False) -> bool:
        """Whether the primary is elsewhere now: as last learnt (cheap, for every use) or, with ``ask``, as the
        sentinels or the cluster say now. When they cannot be asked, nothing has moved: the connection stays."""
        try:
            current = self.where(ask)
        except UNREADABLE:
            return False
        return current is not None and current != self.address


def followed(connection: AbstractConnection, kwargs: dict[str, Any]) -> FollowedPrimary | None:
    """What ``connection`` (made with ``kwargs`` by its pool) follows; None for a connection to one server."""
    if isinstance(connection, ShardConnection):
        return FollowedPrimary(connection.owner, (str(connection.host), int(connection.port)), watch=False)
    proxy = kwargs.get("connection_pool")  # redis-py's Sentinel-managed connections ask it for the primary
    if proxy is None or not getattr(proxy, "is_master", False):
        return None

    def where(ask: bool) -> Address | None:
        if ask:
            proxy.get_master_address()  # asks the sentinels; keeps their answer in master_address
        current = proxy.master_address
        return None if current is None else (str(current[0]), int(current[1]))

    return FollowedPrimary(where, (str(getattr(connection, "host", "")), int(getattr(connection, "port", 0))))


class ShardConnection(Connection):
    """A connection to the primary that owns the slot of ``key`` in ``cluster``, found anew at each connect; a
    ``MOVED`` or ``ASK`` answer closes it and raises ``ConnectionError`` (the next connect finds the new owner),
    as redis-py's Sentinel-managed connections do with ``READONLY``."""

    def __init__(self, *, cluster: redis.RedisCluster, key: str, **kwargs: Any) -> None:
        self.cluster = cluster
        self.key = key
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]

    def owner(self, ask: bool = False) -> Address:
        """The address of the primary that owns the key's slot (``ask``: after reading the slot map again, if
        it was not read in the last :data:`REFRESH_EVERY` seconds).

        :raises redis.ConnectionError: no node owns it now (a failover under way).
        """
        if ask:
            refresh_slots(self.cluster)
        try:
            node = self.cluster.get_node_from_key(self.key)  # type: ignore[no-untyped-call]
        except RedisClusterException as exc:
            raise redis.ConnectionError(f"no node serves the slot of {self.key!r}: {exc}") from exc
        return str(node.host), int(node.port)

    def connect(self) -> None:
        """Connect to the slot's primary, and check that it is one: the slot map may be behind a failover
        (a subscriber on a replica would hear what is published, while nobody counts it)."""
        self.host, self.port = self.owner()
        try:
            super().connect()  # type: ignore[no-untyped-call]
            role = self._role()
        except redis.ConnectionError:
            refresh_slots(self.cluster)  # the node may be gone: the next try asks where the slot is now
            raise
        if role != "master":
            self.disconnect()  # type: ignore[no-untyped-call]
            refresh_slots(self.cluster)
            raise redis.ConnectionError(f"{self.host}:{self.port} is a {role} now, not the primary of its slot")

    def _role(self) -> str:
        """The server's role, from HELLO (which every ACL user may send, unlike ROLE or INFO)."""
        self.send_command("HELLO")  # type: ignore[no-untyped-call]
        hello = self.read_response()
        if isinstance(hello, list):  # RESP2: names and values in turn
            hello = dict(zip(hello[::2], hello[1::2], strict=True))
        role = hello.get(b"role", hello.get("role", b"?")) if isinstance(hello, dict) else b"?"
        return role.decode() if isinstance(role, bytes) else str(role)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except AskError as exc:  # MOVED too: the slot is served elsewhere now
            self.disconnect()  # type: ignore[no-untyped-call]
            refresh_slots(self.cluster)
            raise redis.ConnectionError(f"the slot of {self.key!r} moved: {exc}") from exc


class ShardSSLConnection(ShardConnection, SSLConnection):
    """A :class:`ShardConnection` over TLS."""


_refreshed: WeakKeyDictionary[redis.RedisCluster, float] = WeakKeyDictionary()
_refresh_lock = threading.Lock()

#: The least time between two readings of a cluster's slot map that nothing asked for by name, in seconds.
REFRESH_EVERY = 0.5


def refresh_slots(cluster: redis.RedisCluster) -> None:
    """Read ``cluster``'s slot map again, after a failover or a migration: at most every
    :data:`REFRESH_EVERY` seconds, so that every connection failing at once asks once (redis-py then also
    renews the connections of the node it asked). A map that cannot be read is kept."""
    now = time.monotonic()
    with _refresh_lock:
        if now - _refreshed.get(cluster, 0.0) < REFRESH_EVERY:
            return
        _refreshed[cluster] = now
    try:
        cluster.nodes_manager.initialize()
    except UNREADABLE as exc:
        log.debug("the slot map of %r could not be read: %s", cluster, exc)


def shard_pool(cluster: redis.RedisCluster, key: str) -> redis.ConnectionPool:
    """A connection pool whose connections go to the primary that owns ``key``'s slot, with the settings of
    the cluster's own node connections (credentials, TLS, timeouts, protocol)."""
    node = cluster.get_node_from_key(key)  # type: ignore[no-untyped-call]
    own = cluster.get_redis_connection(node).connection_pool
    kwargs = {name: value for name, value in own.connection_kwargs.items() if name not in _PLACE}
    tls = issubclass(own.connection_class, SSLConnection)
    connection_class = ShardSSLConnection if tls else ShardConnection
    return redis.ConnectionPool(connection_class=connection_class, cluster=cluster, key=key, **kwargs)


_PLACE = ("host", "port", "orig_host_address")  # where one node is: a shard connection finds its own
