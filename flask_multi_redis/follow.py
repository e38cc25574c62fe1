"""Connections that follow their data: to the primary its sentinels name, or to the primary that owns a slot
of a Redis Cluster, through failovers and slot migrations.

redis-py's Sentinel-managed connections ask the sentinels at each connect and take ``READONLY`` for a demoted
primary; :class:`ShardConnection` does the same on a cluster with the cluster's slot map, and takes ``MOVED``
and ``ASK`` for a slot that moved. :class:`FollowedPrimary` tells, for a connection that stays open, whether
what it follows is elsewhere now, from what was last learnt; learning anew (asking the sentinels, reading the
slot map) is done by one background thread (:class:`Refresher`), so that no call and no listener waits on a
sentinel or a node that does not answer.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from redis.connection import AbstractConnection, Connection, SSLConnection
from redis.exceptions import AskError, RedisClusterException
from redis.sentinel import Sentinel, SentinelConnectionPool

from .forks import ProcessLock

__all__ = [
    "FollowedPrimary",
    "FollowingSentinelPool",
    "Refresher",
    "SerializedSentinel",
    "ShardConnection",
    "followed",
    "refresh_slots",
    "shard_pool",
]

log = logging.getLogger(__name__)

Address = tuple[str, int]

#: The least time between two refreshes of one thing (a sentinel pool's primary, a cluster's slot map), seconds.
REFRESH_EVERY = 0.5


class Refresher:
    """One daemon thread (a greenlet under gevent) that runs refresh jobs in the background: each job at most
    every :data:`REFRESH_EVERY` seconds, however often it is asked for; a job that fails is logged at DEBUG."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a child has no thread, and maybe a lock held

    def _reset(self) -> None:
        self._changed = threading.Condition()
        self._wanted: dict[int, Callable[[], object]] = {}
        self._last: dict[int, float] = {}
        self._thread: threading.Thread | None = None

    def ask(self, key: object, job: Callable[[], object]) -> None:
        """Run ``job`` soon, once for any number of asks with the same ``key`` meanwhile."""
        with self._changed:
            self._wanted[id(key)] = job
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="flask-redis-refresher", daemon=True)
                self._thread.start()
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._wanted:
                    self._changed.wait()
                now = time.monotonic()
                due = {key: job for key, job in self._wanted.items() if now - self._last.get(key, 0.0) >= REFRESH_EVERY}
                if not due:
                    soonest = min(self._last[key] for key in self._wanted) + REFRESH_EVERY
                    self._changed.wait(max(0.01, soonest - now))
                    continue
                for key in due:
                    del self._wanted[key]
                    self._last[key] = now
            for job in due.values():
                try:
                    job()
                except Exception as exc:  # a sentinel or node that does not answer: the next ask tries again
                    log.debug("a background refresh failed: %s", exc)


#: The process's one refresher.
REFRESHER = Refresher()


@dataclass(frozen=True)
class FollowedPrimary:
    """Where a connection was opened, where the primary it follows is as last learnt, and how to learn anew."""

    where: Callable[[], Address | None]  # as last learnt: no I/O
    refresh: Callable[[], None]  # learn anew, in the background
    address: Address
    #: Whether a subscriber must have it learnt anew now and then: a primary demoted by its sentinels tells its
    #: subscribers nothing, while a cluster node that loses a slot unsubscribes them from its shard channels
    #: (and every failure of a connection has the slot map read again).
    watch: bool = True

    def moved(self) -> bool:
        """Whether the primary is elsewhere now, as last learnt (any connection of the pool may have learnt it)."""
        try:
            current = self.where()
        except (redis.RedisError, RedisClusterException):
            return False
        return current is not None and current != self.address


def followed(connection: AbstractConnection, kwargs: dict[str, Any]) -> FollowedPrimary | None:
    """What ``connection`` (made with ``kwargs`` by its pool) follows; None for a connection to one server."""
    address = (str(getattr(connection, "host", "")), int(getattr(connection, "port", 0)))
    if isinstance(connection, ShardConnection):
        cluster = connection.cluster
        return FollowedPrimary(connection.owner, lambda: refresh_slots(cluster), address, watch=False)
    proxy = kwargs.get("connection_pool")  # redis-py's Sentinel-managed connections ask it for the primary
    if proxy is None or not getattr(proxy, "is_master", False):
        return None

    def where() -> Address | None:
        current = proxy.master_address
        return None if current is None else (str(current[0]), int(current[1]))

    return FollowedPrimary(where, lambda: REFRESHER.ask(proxy, proxy.get_master_address), address)


class FollowingSentinelPool(SentinelConnectionPool):
    """A session's pool of connections to the primary behind sentinels that also follows a switch-over nobody
    told it of. redis-py leaves a connection when a command gets ``READONLY``, and a released connection to an
    address that is no longer the primary as last learnt; but a demoted primary takes ``PUBLISH`` (and reads)
    without a word, and the address is learnt only when a connection is made. So, while the pool is in use, the
    primary is learnt anew in the background every :data:`REFRESH_EVERY` seconds at most: a connection to the
    old one is then closed as it is released, and the next command goes to the new primary."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._asked = 0.0

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        now = time.monotonic()
        if self.is_master and now - self._asked >= REFRESH_EVERY:
            self._asked = now
            REFRESHER.ask(self.proxy, self.proxy.get_master_address)
        return super().get_connection(*args, **kwargs)


class SerializedSentinel(Sentinel):
    """redis-py's Sentinel, asked by one thread at a time: its lookups reorder the list of sentinels as they
    go, and connections, listeners and the refresher may look up at once during a failover."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lookup = ProcessLock()  # held across the lookup: made where it is taken (forks.py)

    def discover_master(self, service_name: str) -> Any:
        with self._lookup:
            return super().discover_master(service_name)

    def discover_slaves(self, service_name: str) -> Any:
        with self._lookup:
            return super().discover_slaves(service_name)


class ShardConnection(Connection):
    """A connection to the primary that owns the slot of ``key`` in ``cluster``, as its slot map says at each
    connect, checked with ``HELLO``; a ``MOVED`` or ``ASK`` answer closes it and raises ``ConnectionError``, as
    redis-py's Sentinel-managed connections do with ``READONLY``. Each failure has the slot map read again, in
    the background, for the next connect."""

    def __init__(self, *, cluster: redis.RedisCluster, key: str, **kwargs: Any) -> None:
        self.cluster = cluster
        self.key = key
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]

    def owner(self) -> Address:
        """The address of the primary that owns the key's slot, from the slot map as last read.

        :raises redis.ConnectionError: no node owns it now (a failover under way).
        """
        try:
            node = self.cluster.get_node_from_key(self.key)  # type: ignore[no-untyped-call]
        except RedisClusterException as exc:
            raise redis.ConnectionError(f"no node serves the slot of {self.key!r}: {exc}") from exc
        return str(node.host), int(node.port)

    def connect(self) -> None:
        """Connect to the slot's primary, and check that it is one: the slot map may be behind a failover
        (a subscriber on a replica would hear what is published, while nobody counts it)."""
        try:
            self.host, self.port = self.owner()
            super().connect()  # type: ignore[no-untyped-call]
            role = self._role()
        except (redis.ConnectionError, redis.TimeoutError):  # refused, or silent: the node may be gone
            refresh_slots(self.cluster)
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


def refresh_slots(cluster: redis.RedisCluster) -> None:
    """Have ``cluster``'s slot map read again, in the background (redis-py then also renews the connections of
    the node it asked). A map that cannot be read is kept."""
    REFRESHER.ask(cluster, cluster.nodes_manager.initialize)


def shard_pool(cluster: redis.RedisCluster, key: str) -> redis.ConnectionPool:
    """A connection pool whose connections go to the primary that owns ``key``'s slot, with the settings of
    the cluster's own node connections (credentials, TLS, timeouts, protocol)."""
    node = cluster.get_random_node()  # type: ignore[no-untyped-call]
    own = cluster.get_redis_connection(node).connection_pool
    kwargs = {name: value for name, value in own.connection_kwargs.items() if name not in _PLACE}
    tls = issubclass(own.connection_class, SSLConnection)
    connection_class = ShardSSLConnection if tls else ShardConnection
    return redis.ConnectionPool(connection_class=connection_class, cluster=cluster, key=key, **kwargs)


_PLACE = ("host", "port", "orig_host_address")  # where one node is: a shard connection finds its own
