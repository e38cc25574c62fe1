"""How every connection is made from a database's spec: the sessions' clients (one connection pool per server,
database and settings), the broker's own bounded clients, and the connections spoken to directly
(:mod:`.direct`), which redis-py makes and hands over here. Nothing else in the package opens a connection.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode
from redis.connection import AbstractConnection
from redis.exceptions import InvalidResponse, RedisClusterException
from redis.retry import Retry
from redis.sentinel import SentinelConnectionPool

from .cluster import ClusterSession, broker_tag
from .config import ClusterNodes, DatabaseSpec, Sentinels
from .follow import FollowedPrimary, FollowingSentinelPool, SerializedSentinel, followed, shard_pool
from .forks import ProcessLock
from .gevent_io import fast_readiness_checks
from .session import RedisSession

__all__ = [
    "CONNECTION_LOST",
    "HandedOver",
    "NodeInfo",
    "ServerInfo",
    "build_cluster",
    "build_sessions",
    "database_url",
    "derived_client",
    "describe",
    "error_code",
    "failure_reason",
    "hand_over",
    "ping",
    "session_class",
    "shard_session",
    "topology_nodes",
]

_classes: dict[type[redis.Redis], type[RedisSession]] = {RedisSession: RedisSession, redis.Redis: RedisSession}
_classes_lock = ProcessLock()


def session_class(client_class: type[redis.Redis]) -> type[RedisSession]:
    """A RedisSession that is also a ``client_class`` (a user's redis.Redis subclass from CLASS)."""
    with _classes_lock:
        cls = _classes.get(client_class)
        if cls is None and issubclass(client_class, RedisSession):
            cls = client_class
        if cls is None:
            name = f"RedisSession[{client_class.__name__}]"
            cls = type(name, (RedisSession, client_class), {"__module__": __name__})
            _classes[client_class] = cls
        return cls


def build_sessions(specs: Iterable[DatabaseSpec], replicas: bool = False) -> dict[str, RedisSession]:
    """One RedisSession per spec, by name. Creating clients opens no connection (no network I/O here).

    :param replicas: sessions on a replica, for reads (of a database behind sentinels: on a replica they list,
        the primary when none is up).
    """
    fast_readiness_checks()  # a gevent-patched process: see gevent_io
    pools: dict[tuple[object, ...], redis.ConnectionPool] = {}
    sentinels: dict[tuple[object, ...], SerializedSentinel] = {}
    sessions: dict[str, RedisSession] = {}
    for spec in specs:
        cls = session_class(spec.client_class)
        pool = pools.get(spec.pool_key)
        if pool is None and isinstance(spec.topology, Sentinels):
            shape = spec.topology
            found = (shape.nodes, repr(sorted(shape.kwargs.items())))
            manager = sentinels.get(found) or SerializedSentinel(list(shape.nodes), sentinel_kwargs=dict(shape.kwargs))
            sentinels[found] = manager
            pool = FollowingSentinelPool(shape.master, manager, is_master=not replicas, **spec.kwargs)
            pools[spec.pool_key] = pool
        if pool is None:
            session = cls(name=spec.name, prefix=spec.prefix, **spec.kwargs)
            pools[spec.pool_key] = session.connection_pool
        else:
            session = cls(name=spec.name, prefix=spec.prefix, connection_pool=pool)
        sessions[spec.name] = session
    return sessions


def build_cluster(spec: DatabaseSpec) -> ClusterSession:
    """The ClusterSession of a database on a Redis Cluster. This connects: redis-py reads the cluster's slots
    from a startup node when the client is made."""
    shape = spec.topology
    assert isinstance(shape, ClusterNodes)
    nodes = [ClusterNode(host, port) for host, port in shape.nodes]  # type: ignore[no-untyped-call]
    try:
        return ClusterSession(
            startup_nodes=nodes, name=spec.name, prefix=spec.prefix, sharded=shape.sharded, **spec.kwargs
        )
    except RedisClusterException as exc:  # not a RedisError: no startup node answered, or they disagree
        raise redis.ConnectionError(f"{spec.address}: {exc}") from exc


_shard_lock = ProcessLock()  # held while the shard session is made: made where it is taken (forks.py)


def shard_session(cluster: ClusterSession) -> RedisSession:
    """The session the broker uses on a cluster: on the primary that owns the slot of the hash tag
    ``{PREFIX}`` (every key and channel of the broker's carries it), following it through failovers and
    migrations; its prefix is that tag. One per cluster session."""
    with _shard_lock:
        if cluster.shard_session is None:
            tag = broker_tag(cluster.prefix)
            pool = shard_pool(cluster, tag)
            cluster.shard_session = RedisSession(connection_pool=pool, name=cluster.name, prefix=tag)
        return cluster.shard_session


#: The socket timeout of a derived client when the session sets none, in seconds.
DERIVED_SOCKET_TIMEOUT = 5.0


def derived_client(session: redis.Redis, connections: int, wait: float, name: str | None = None) -> redis.Redis:
    """A client with ``session``'s settings on a pool of its own: at most ``connections`` (callers wait up to
    ``wait`` seconds for one), no redis-py retries (the caller decides what is safe to repeat: a retried PUBLISH
    is a second message), a socket timeout even when the session has none, and the client ``name`` (shown by
    CLIENT LIST) unless the configuration names its clients."""
    pool = session.connection_pool
    kwargs = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
    if name and not kwargs.get("client_name"):
        kwargs["client_name"] = name
    kwargs["socket_timeout"] = kwargs.get("socket_timeout") or DERIVED_SOCKET_TIMEOUT
    kwargs["socket_connect_timeout"] = kwargs.get("socket_connect_timeout") or DERIVED_SOCKET_TIMEOUT
    bounded = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
        connection_class=pool.connection_class, max_connections=connections, timeout=wait, **kwargs
    )
    return redis.Redis(connection_pool=bounded)


@dataclass(frozen=True)
class HandedOver:
    """A connection that redis-py made (handshake done) and handed over to be spoken to directly."""

    connection: AbstractConnection  # closes the socket, and is what redis-py's own code would read
    sock: socket.socket
    parse_error: Callable[[str], redis.RedisError]  # redis-py's table of error replies, through its parser
    where: str  # host:port or the socket's path, as redis-py's error messages name the server
    encode: Callable[[Any], bytes] | None  # None for UTF-8, which hiredis writes itself
    primary: FollowedPrimary | None = None  # the primary it follows (behind sentinels, or a cluster slot's)


#: The most steps of redis-py's handshake that each wait for the server (see :func:`hand_over`).
HANDSHAKE_STEPS = 6


def hand_over(client: redis.Redis, timeout: float | None = None) -> HandedOver:
    """Open a connection exactly as ``client``'s pool opens them (address, TLS, credentials, protocol, database,
    client name: redis-py does the handshake) and hand it over for direct use. This, and nothing else, reaches
    into redis-py's connection objects.

    :param timeout: at most this many seconds for connecting and the handshake (a server that accepts and then
        says nothing must not hold a call past its deadline); the socket keeps the configured timeout after.
    """
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    configured = kwargs.get("socket_timeout")
    if timeout is not None:  # each step may take this: connecting, HELLO, CLIENT SETNAME and SETINFO, SELECT
        bounded = max(0.001, timeout / HANDSHAKE_STEPS)
        connect_timeout = kwargs.get("socket_connect_timeout") or bounded
        kwargs = {
            **kwargs,
            "socket_timeout": min(configured or bounded, bounded),
            "socket_connect_timeout": min(connect_timeout, bounded),
        }
    connection = pool.connection_class(**kwargs)
    connection.connect()
    sock: socket.socket | None = connection._sock
    if sock is None:
        raise redis.ConnectionError("redis-py connected without a socket")
    if timeout is not None:
        sock.settimeout(configured)
        connection.socket_timeout = configured
    encoder = connection.encoder
    utf8 = encoder.encoding.replace("_", "-").lower() in ("utf-8", "utf8")
    return HandedOver(
        connection=connection,
        sock=sock,
        parse_error=connection._parser.parse_error,
        where=connection._host_error(),
        encode=None if utf8 else encoder.encode,
        primary=followed(connection, kwargs),
    )


@dataclass(frozen=True)
class ServerInfo:
    """What :func:`ping` learnt of a server."""

    version: str
    role: str  # master, replica
    mode: str  # standalone, cluster, sentinel
    round_trip_ms: float


def ping(session: redis.Redis | ClusterSession, wait: float = 1.0) -> ServerInfo:
    """Reach ``session``'s server once, on a connection of its own and without retries (a report, not a use):
    its version, role and mode and the round-trip time of a ``PING``. They come from ``HELLO``, which needs no
    ``INFO`` permission; from ``INFO`` where there is no ``HELLO`` (before Redis 6); "?" where neither answers.

    :raises redis.RedisError: the server could not be reached, or refused the PING.
    """
    if isinstance(session, ClusterSession):  # one of its primaries speaks for it; topology_nodes lists them all
        session = session.get_redis_connection(session.get_primaries()[0])  # type: ignore[no-untyped-call]
    client = derived_client(session, connections=1, wait=wait)
    try:
        fields = _server_fields(client)
        started = time.perf_counter()
        client.ping()
        rtt_ms = (time.perf_counter() - started) * 1000
    finally:
        client.connection_pool.disconnect()
    return ServerInfo(fields.get("version", "?"), fields.get("role", "?"), fields.get("mode", "?"), rtt_ms)


@dataclass(frozen=True)
class NodeInfo:
    """One node of a topology, as :func:`topology_nodes` found it."""

    role: str  # primary, replica, sentinel
    address: str  # host:port
    state: str  # ok, or why not (down, unreachable: the reason)


def topology_nodes(session: redis.Redis | ClusterSession) -> list[NodeInfo]:
    """Every node behind a session: on a cluster, each primary and replica, pinged; behind sentinels, the
    primary and replicas as the sentinels see them and each sentinel (asked one by one, each within its own
    socket timeout); none for one server."""
    if isinstance(session, ClusterSession):
        return _cluster_nodes(session)
    pool = session.connection_pool
    if not isinstance(pool, SentinelConnectionPool):
        return []
    manager, service = pool.sentinel_manager, pool.service_name
    found: list[NodeInfo] = []
    data_nodes: dict[str, NodeInfo] = {}
    for sentinel in manager.sentinels:
        kwargs = sentinel.connection_pool.connection_kwargs
        where = f"{kwargs['host']}:{kwargs['port']}"
        try:
            primary = sentinel.sentinel_master(service)
            replicas = sentinel.sentinel_slaves(service)
        except redis.RedisError as exc:
            found.append(NodeInfo("sentinel", where, f"unreachable: {failure_reason(exc)}"))
            continue
        found.append(NodeInfo("sentinel", where, "ok"))
        for role, state in [("primary", primary), *(("replica", replica) for replica in replicas)]:
            address = f"{state['ip']}:{state['port']}"
            down = state.get("is_sdown") or state.get("is_odown")
            data_nodes.setdefault(address, NodeInfo(role, address, "down" if down else "ok"))
    return [*sorted(data_nodes.values(), key=lambda node: node.role), *found]


def _cluster_nodes(session: ClusterSession) -> list[NodeInfo]:
    found = []
    nodes = session.get_nodes()  # type: ignore[no-untyped-call]
    for node in sorted(nodes, key=lambda node: (node.server_type != "primary", node.name)):
        try:
            ping(session.get_redis_connection(node))
            state = "ok"
        except redis.RedisError as exc:
            state = f"unreachable: {failure_reason(exc)}"
        found.append(NodeInfo("primary" if node.server_type == "primary" else "replica", node.name, state))
    return found


def _server_fields(client: redis.Redis) -> dict[str, str]:
    try:
        hello = client.execute_command("HELLO")  # type: ignore[no-untyped-call]
    except redis.ResponseError:  # no HELLO: an old server, or not permitted
        try:
            info = client.info("server")
        except redis.ResponseError:
            return {}
        return {"version": str(info.get("redis_version", "?")), "mode": str(info.get("redis_mode", "?"))}
    if isinstance(hello, list):  # RESP2: a flat list of names and values
        hello = dict(zip(hello[::2], hello[1::2], strict=True))
    return {_text(key): _text(value) for key, value in hello.items()}


#: What says that a connection is lost (and closed): a command that is safe to repeat may be sent again.
CONNECTION_LOST: tuple[type[redis.RedisError], ...] = (redis.ConnectionError, redis.TimeoutError, InvalidResponse)


def error_code(error: BaseException) -> str | None:
    """The code of an error reply (``OOM``, ``NOPERM``, ...: the reply's first word), or None for an exception
    that is no error reply."""
    code = getattr(error, "status_code", None)
    if code:
        return str(code)
    if isinstance(error, redis.ResponseError) and str(error):
        return str(error).split(" ", 1)[0]
    return None


def describe(error: BaseException) -> str:
    """What went wrong, for a message: the exception's type and, for an error reply, its code
    (``OutOfMemoryError OOM``); never the reply's text, which may quote what the command carried."""
    code = error_code(error)
    return f"{type(error).__name__} {code}" if code else type(error).__name__


def failure_reason(error: BaseException) -> str:
    """A one-line account of why reaching Redis failed: for an error reply, what :func:`describe` says; else the
    first line of the error's text (redis-py's name the address and the cause), or its type."""
    if error_code(error):
        return describe(error)
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


#: The client settings a URL carries in its query (redis-py's ``from_url`` reads them back).
URL_OPTIONS = (
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_cert_reqs",
    "ssl_check_hostname",
    "socket_timeout",
    "socket_connect_timeout",
)


def database_url(spec: DatabaseSpec) -> str:
    """The URL of ``spec``'s database with its credentials, and the TLS and timeout settings in its query, for
    libraries that take only a URL. It holds the password: never log it (``spec.address`` is the one to show)."""
    scheme, _, rest = spec.address.partition("://")
    head, at, tail = rest.partition("@")
    if at and "/" not in head:  # the shown address's user and hidden password: replaced by the real ones
        rest = tail
    user, password = spec.kwargs.get("username"), spec.kwargs.get("password")
    userinfo = ""
    if user is not None or password is not None:
        userinfo = quote(str(user or ""), safe="") + ("" if password is None else ":" + quote(str(password), safe=""))
        userinfo += "@"
    options = [(key, spec.kwargs[key]) for key in URL_OPTIONS if spec.kwargs.get(key) is not None]
    query = "&".join(f"{key}={quote(str(value), safe='')}" for key, value in options)
    if query:
        rest += ("&" if "?" in rest else "?") + query
    return f"{scheme}://{userinfo}{rest}"
