"""Topologies: a primary found through Redis Sentinel, or a Redis Cluster, resolved from the config keys
(``SENTINELS``, ``SENTINEL_MASTER``, ``CLUSTER``, ``CLUSTER_NODES``) or from a ``redis+sentinel://`` or
``redis+cluster://`` URL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from flask_multi_redis.errors import ConfigurationError

from .models import DEFAULT_HOST, DEFAULT_PORT, SSL_FIELDS, Label, check_node

__all__ = ["ClusterNodes", "Sentinels", "Topology", "display_nodes", "split_url", "topology"]

#: The sentinels' socket timeouts when the config sets none, in seconds: every new connection to the primary
#: asks a sentinel first, and a sentinel that does not answer must not hold it for ever.
SENTINEL_SOCKET_TIMEOUT = 2.0

Node = tuple[str, int]


@dataclass(frozen=True)
class Sentinels:
    """A primary, and its replicas, found through sentinels by the service name ``master``."""

    nodes: tuple[Node, ...]
    master: str
    kwargs: dict[str, Any] = field(repr=False)  # how to talk to the sentinels: credentials, TLS, timeouts


@dataclass(frozen=True)
class ClusterNodes:
    """A Redis Cluster, reached first through one of its ``nodes``."""

    nodes: tuple[Node, ...]
    sharded: bool  # SSUBSCRIBE / SPUBLISH: a message travels only within the shard of its channel's slot


Topology = Sentinels | ClusterNodes


_SENTINEL_KEYS = ("SENTINELS", "SENTINEL_MASTER", "SENTINEL_USERNAME", "SENTINEL_PASSWORD")
_SCHEMES = {
    "redis+sentinel": "redis",
    "rediss+sentinel": "rediss",
    "redis+cluster": "redis",
    "rediss+cluster": "rediss",
}


def split_url(url: str, key: str) -> tuple[str, dict[str, Any]] | None:
    """For a ``redis+sentinel://`` or ``redis+cluster://`` URL (``rediss+`` for TLS), a plain URL of the first
    node with the same credentials, database and query, and the topology's keys; None for any other URL.

    ``redis+sentinel://[user:password@]host:port[,host:port...]/service_name[/db]``: the hosts are the
    sentinels, the credentials those of the data nodes. ``redis+cluster://[user:password@]host:port[,...]``:
    the hosts are startup nodes.
    """
    scheme, sep, rest = url.partition("://")
    plain_scheme = _SCHEMES.get(scheme.lower()) if sep else None
    if plain_scheme is None:
        return None
    parts = urlsplit(f"{plain_scheme}://{rest}")
    userinfo, at, hosts = parts.netloc.rpartition("@")
    try:
        nodes = [check_node(node) for node in hosts.split(",")]
    except ValueError:
        raise ConfigurationError(key, "names a host that is not host:port", "host:port[,host:port...]") from None
    names = [f"{_host(host)}:{port}" for host, port in nodes]
    segments = [segment for segment in parts.path.split("/") if segment]
    first = f"{userinfo}{at}{names[0]}"
    query = f"?{parts.query}" if parts.query else ""
    if scheme.lower().endswith("+cluster"):
        if segments:
            raise ConfigurationError(key, "has a path, but a cluster has only database 0", "no path")
        return f"{plain_scheme}://{first}{query}", {"CLUSTER": True, "CLUSTER_NODES": names}
    if not segments or len(segments) > 2:
        raise ConfigurationError(
            key, "does not name the service after the hosts", "redis+sentinel://host:port[,...]/service_name[/db]"
        )
    database = f"/{segments[1]}" if len(segments) == 2 else ""
    return f"{plain_scheme}://{first}{database}{query}", {"SENTINELS": names, "SENTINEL_MASTER": segments[0]}


def topology(given: dict[str, Any], label: Label, path: tuple[str, ...], scheme: str) -> Topology | None:
    """The topology the keys in ``given`` describe, or None for one server; a mistake is a ConfigurationError
    naming the key."""

    def key(name: str) -> str:
        return label((*path, name))

    sentinel_given = [name for name in _SENTINEL_KEYS if name in given]
    cluster = bool(given.get("CLUSTER")) or "CLUSTER_NODES" in given
    if given.get("CLUSTER") is False and "CLUSTER_NODES" in given:
        raise ConfigurationError(key("CLUSTER_NODES"), "is set but CLUSTER is false", "CLUSTER true, or no nodes")
    if "SHARDED_PUBSUB" in given and not cluster:
        raise ConfigurationError(key("SHARDED_PUBSUB"), "applies to a cluster only", "CLUSTER true")
    if cluster and sentinel_given:
        raise ConfigurationError(
            key(sentinel_given[0]), "is set for a Redis Cluster", "a cluster or sentinels, not both"
        )
    if scheme == "unix" and (cluster or sentinel_given):
        what = "CLUSTER" if cluster else sentinel_given[0]
        raise ConfigurationError(key(what), "is set with a unix socket", "host:port addresses (SCHEMA redis/rediss)")
    if cluster:
        return _cluster(given, key)
    if sentinel_given:
        return _sentinels(given, key, scheme)
    return None


def _cluster(given: dict[str, Any], key: Callable[[str], str]) -> ClusterNodes:
    if "CLUSTER_NODES" in given and ("HOST" in given or "PORT" in given):
        raise ConfigurationError(
            key("CLUSTER_NODES"), "is set together with HOST/PORT", "startup nodes in CLUSTER_NODES or HOST/PORT"
        )
    if int(given.get("DATABASE", 0)) != 0:
        raise ConfigurationError(
            key("DATABASE"), "is not 0, but a Redis Cluster has only database 0", "DATABASE 0 (or none)"
        )
    if "CLASS" in given:
        raise ConfigurationError(key("CLASS"), "is set for a cluster, whose client is redis.RedisCluster", "no CLASS")
    if "CLUSTER_NODES" in given:
        nodes = tuple(check_node(node) for node in given["CLUSTER_NODES"])
    else:  # HOST and PORT (or the URL's) name the startup node
        nodes = ((given.get("HOST", DEFAULT_HOST), int(given.get("PORT", DEFAULT_PORT))),)
    return ClusterNodes(nodes=nodes, sharded=bool(given.get("SHARDED_PUBSUB", True)))


def _sentinels(given: dict[str, Any], key: Callable[[str], str], scheme: str) -> Sentinels:
    if "SENTINELS" not in given:
        first = next(name for name in _SENTINEL_KEYS if name in given)
        raise ConfigurationError(key(first), "is set without SENTINELS", "SENTINELS: a list of host:port")
    if "SENTINEL_MASTER" not in given:
        raise ConfigurationError(
            key("SENTINEL_MASTER"), "is required with SENTINELS", "the service name the sentinels monitor"
        )
    located = [name for name in ("HOST", "PORT") if name in given]
    if located:
        raise ConfigurationError(
            key(located[0]), "is set with SENTINELS, which say where the primary is", "no HOST or PORT"
        )
    kwargs: dict[str, Any] = {
        "socket_timeout": given.get("SOCKET_TIMEOUT") or SENTINEL_SOCKET_TIMEOUT,
        "socket_connect_timeout": given.get("SOCKET_CONNECT_TIMEOUT") or SENTINEL_SOCKET_TIMEOUT,
    }
    if "SENTINEL_USERNAME" in given:
        kwargs["username"] = given["SENTINEL_USERNAME"]
    if "SENTINEL_PASSWORD" in given:
        kwargs["password"] = given["SENTINEL_PASSWORD"].get_secret_value()
    if scheme == "rediss":  # the sentinels speak TLS too, trusting the same CA
        kwargs["ssl"] = True
        kwargs.update({name.lower(): given[name] for name in SSL_FIELDS if name in given})
    nodes = tuple(check_node(node) for node in given["SENTINELS"])
    return Sentinels(nodes=nodes, master=given["SENTINEL_MASTER"], kwargs=kwargs)


def display_nodes(nodes: tuple[Node, ...]) -> str:
    """``host:port,host:port``, as the URL forms write them."""
    return ",".join(f"{_host(host)}:{port}" for host, port in nodes)


def _host(host: str) -> str:
    return f"[{quote(host, safe=':')}]" if ":" in host else host
