"""Configuration of a primary behind sentinels and of a cluster: every source, the URL forms, the address shown,
and mistakes named by key. No server is needed: nothing connects here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from redis.sentinel import SentinelConnectionPool

from flask_multi_redis import ConfigurationError, FlaskRedisMulti, FlaskRedisSingle, IRedisSimpleConfig
from flask_multi_redis.config import ClusterNodes, Sentinels, load_config, resolve

MakeApp = Callable[..., Flask]

SENTINELS = ["10.0.0.1:26379", "10.0.0.2:26379", "[::1]:26380"]


def sentinels_of(ext: FlaskRedisSingle | FlaskRedisMulti, name: str = "default") -> Sentinels:
    pool = ext.getRedis(name).connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    manager = pool.sentinel_manager
    nodes = tuple(
        (s.connection_pool.connection_kwargs["host"], s.connection_pool.connection_kwargs["port"])
        for s in manager.sentinels
    )
    return Sentinels(nodes=nodes, master=pool.service_name, kwargs=dict(manager.sentinel_kwargs))


@pytest.mark.parametrize(
    "source",
    [
        {"SENTINELS": SENTINELS, "SENTINEL_MASTER": "mymaster", "DATABASE": 3, "PASSWORD": "data-secret"},
        {"URL": "redis+sentinel://:data-secret@10.0.0.1:26379,10.0.0.2:26379,[::1]:26380/mymaster/3"},
        IRedisSimpleConfig(SENTINELS=SENTINELS, SENTINEL_MASTER="mymaster", DATABASE=3, PASSWORD="data-secret"),
    ],
    ids=["dict", "url", "model"],
)
def test_sentinels_from_a_dict_a_url_and_a_model(source: Any) -> None:
    ext = FlaskRedisSingle(source)
    shape = sentinels_of(ext)
    assert shape.nodes == (("10.0.0.1", 26379), ("10.0.0.2", 26379), ("::1", 26380))
    assert shape.master == "mymaster"
    session = ext.getRedis()
    assert session.database == 3
    assert session.connection_pool.connection_kwargs["password"] == "data-secret"  # the data nodes'
    assert "password" not in shape.kwargs  # the sentinels have none of their own here
    address = ext.addresses()["default"]
    assert address == "redis+sentinel://:***@10.0.0.1:26379,10.0.0.2:26379,[::1]:26380/mymaster/3"
    assert "data-secret" not in repr(ext.getRedis()) + address


def test_flat_keys_take_the_sentinels_comma_separated(make_app: MakeApp) -> None:
    app = make_app(
        REDIS_SENTINELS="10.0.0.1:26379, 10.0.0.2:26379",
        REDIS_SENTINEL_MASTER="cache",
        REDIS_SENTINEL_USERNAME="watcher",
        REDIS_SENTINEL_PASSWORD="sentinel-secret",
    )
    ext = FlaskRedisSingle(app)
    with app.app_context():
        shape = sentinels_of(ext)
        assert shape.nodes == (("10.0.0.1", 26379), ("10.0.0.2", 26379))
        assert (shape.kwargs["username"], shape.kwargs["password"]) == ("watcher", "sentinel-secret")
        assert shape.kwargs["socket_timeout"] == 2.0  # a sentinel that does not answer holds nobody for ever
        assert "password" not in ext.getRedis().connection_pool.connection_kwargs  # the sentinels' only
        assert "sentinel-secret" not in ext.addresses()["default"]


def test_a_replica_session_reads_from_the_replicas_and_one_server_has_its_own() -> None:
    ext = FlaskRedisMulti(
        {
            "SENTINELS": SENTINELS,
            "SENTINEL_MASTER": "mymaster",
            "DATABASES": {"cache": 1, "local": {"URL": "redis://10.0.0.9:6379/2"}},
        }
    )
    primary, replica = ext.getRedis("cache"), ext.getRedis("cache", replica=True)
    assert isinstance(replica.connection_pool, SentinelConnectionPool)
    assert not replica.connection_pool.is_master
    assert isinstance(primary.connection_pool, SentinelConnectionPool)
    assert primary.connection_pool.is_master
    assert (replica.name, replica.database) == ("cache", 1)
    assert ext.getRedis("local", replica=True) is ext.getRedis("local")  # an override of its own server


def test_tls_reaches_the_sentinels_too(tmp_path: Any) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here")
    ext = FlaskRedisSingle(
        {"URL": "rediss+sentinel://10.0.0.1:26379/mymaster", "SSL_CA_CERTS": str(ca), "SOCKET_TIMEOUT": 0.5}
    )
    shape = sentinels_of(ext)
    assert shape.kwargs["ssl"] is True
    assert shape.kwargs["ssl_ca_certs"] == str(ca)
    assert shape.kwargs["socket_timeout"] == 0.5
    assert ext.getRedis().connection_pool.connection_class.__name__ == "SentinelManagedSSLConnection"


@pytest.mark.parametrize(
    ("config", "key", "fragment"),
    [
        ({"SENTINELS": SENTINELS}, "REDIS.SENTINEL_MASTER", "required with SENTINELS"),
        ({"SENTINEL_MASTER": "m"}, "REDIS.SENTINEL_MASTER", "without SENTINELS"),
        ({"SENTINEL_PASSWORD": "p"}, "REDIS.SENTINEL_PASSWORD", "without SENTINELS"),
        ({"SENTINELS": ["10.0.0.1"], "SENTINEL_MASTER": "m"}, "REDIS.SENTINELS", "is not host:port"),
        ({"SENTINELS": ["h:0"], "SENTINEL_MASTER": "m"}, "REDIS.SENTINELS", "is not host:port"),
        ({"SENTINELS": [], "SENTINEL_MASTER": "m"}, "REDIS.SENTINELS", "at least 1"),
        ({"SENTINELS": SENTINELS, "SENTINEL_MASTER": "m", "HOST": "h"}, "REDIS.HOST", "say where the primary"),
        ({"SENTINELS": SENTINELS, "SENTINEL_MASTER": "m", "CLUSTER": True}, "REDIS.SENTINELS", "not both"),
        ({"SENTINELS": SENTINELS, "SENTINEL_MASTER": "m", "UNIX_SOCKET_PATH": "/r.sock"}, "REDIS.SENTINELS", "unix"),
        ({"URL": "redis+sentinel://10.0.0.1:26379"}, "REDIS.URL", "does not name the service"),
        ({"URL": "redis+sentinel://10.0.0.1/m"}, "REDIS.URL", "host:port"),
        ({"URL": "redis+cluster://10.0.0.1:7000/2"}, "REDIS.URL", "only database 0"),
        ({"CLUSTER": True, "DATABASE": 2}, "REDIS.DATABASE", "only database 0"),
        ({"CLUSTER": False, "CLUSTER_NODES": ["h:7000"]}, "REDIS.CLUSTER_NODES", "CLUSTER is false"),
        ({"CLUSTER_NODES": ["h:7000"], "PORT": 7001}, "REDIS.CLUSTER_NODES", "together with HOST/PORT"),
        ({"SHARDED_PUBSUB": True}, "REDIS.SHARDED_PUBSUB", "a cluster only"),
        ({"CLUSTER": True, "CLASS": "redis.Redis"}, "REDIS.CLASS", "redis.RedisCluster"),
    ],
)
def test_topology_mistakes_name_the_key(config: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        FlaskRedisSingle(config)
    assert caught.value.key == key
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    "source",
    [
        {"URL": "redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001", "PREFIX": "p"},
        {"CLUSTER": True, "HOST": "10.0.0.1", "PORT": 7000, "PASSWORD": "pw", "PREFIX": "p"},
        {"CLUSTER_NODES": "10.0.0.1:7000, 10.0.0.2:7001", "PASSWORD": "pw", "PREFIX": "p", "SHARDED_PUBSUB": False},
    ],
)
def test_a_cluster_from_a_url_a_startup_node_and_a_node_list(source: dict[str, Any]) -> None:
    config, label = load_config(source, config_element="REDIS", multi=False)
    (spec,) = resolve(config, label)  # resolved only: making the session would connect
    assert isinstance(spec.topology, ClusterNodes)
    assert spec.topology.nodes[0] == ("10.0.0.1", 7000)
    assert spec.topology.sharded is ("SHARDED_PUBSUB" not in source)
    assert spec.address.startswith("redis+cluster://:***@10.0.0.1:7000")
    assert spec.kwargs["password"] == "pw"
    assert not {"host", "port", "db"} & set(spec.kwargs)


def test_a_database_naming_its_own_sentinels_inherits_no_location() -> None:
    ext = FlaskRedisMulti(
        {
            "HOST": "10.0.0.9",
            "PORT": 6380,
            "DATABASES": {"plain": 0, "watched": {"SENTINELS": SENTINELS[:1], "SENTINEL_MASTER": "m"}},
        }
    )
    assert ext.addresses() == {"plain": "redis://10.0.0.9:6380/0", "watched": "redis+sentinel://10.0.0.1:26379/m/0"}
