"""On a Redis Cluster: the session is a redis.RedisCluster with the prefix-aware, typed pub/sub of a RedisSession,
sharded by default, against a real cluster of three primaries with a replica each started by the tests."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import BaseModel

from flask_multi_redis import ClusterSession, ConfigurationError, FlaskRedisSingle
from flask_multi_redis.broker import NoResponders

from .topologies import Cluster


class Question(BaseModel):
    text: str


@pytest.fixture
def cluster(redis_cluster: Cluster) -> Cluster:
    """The tests' shared cluster (sessions only: nothing here fails it over)."""
    return redis_cluster


@pytest.fixture(params=[True, False], ids=["sharded", "classic"])
def session(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[ClusterSession]:
    config = {"URL": cluster.url, "PREFIX": f"c{secrets.token_hex(4)}", "SHARDED_PUBSUB": request.param}
    ext = FlaskRedisSingle(config)
    session = ext.getCluster()
    yield session
    session.close()


def test_the_session_is_a_redis_cluster_client_that_knows_its_prefix(cluster: Cluster) -> None:
    ext = FlaskRedisSingle({"URL": cluster.url, "PREFIX": "env"})
    session = ext.getRedis()
    assert isinstance(session, redis.RedisCluster)
    assert session is ext.getCluster()
    assert (session.name, session.prefix, session.database) == ("default", "env", 0)
    for index in range(50):  # keys on every shard
        session.set(f"key:{index}", index)
    assert [int(session.get(f"key:{index}")) for index in range(50)] == list(range(50))
    assert ext.addresses()["default"] == cluster.url
    session.close()


def test_making_the_extension_reads_nothing_from_the_cluster() -> None:
    """init_app does no network I/O: only the first use of the session connects (to read the slots)."""
    ext = FlaskRedisSingle({"URL": "redis+cluster://:secret@127.0.0.1:1"})
    with pytest.raises(redis.ConnectionError, match="Connection refused") as caught:
        ext.getCluster()
    assert "secret" not in str(caught.value)


def test_publish_subscribe_and_wait_for_a_typed_reply(session: ClusterSession) -> None:
    pubsub = session.subscribe("news")
    try:
        assert session.publish("news", Question(text="hi")) == 1
        assert session.wait_for_reply(pubsub, Question, timeout=5) == Question(text="hi")
        assert session.wait_for_reply(pubsub, Question, timeout=0.2, allow_error=True) is None
    finally:
        pubsub.close()


def test_publish_and_wait_reply_and_no_responders(session: ClusterSession) -> None:
    pubsub = session.subscribe("questions")
    ready = threading.Event()

    def answer() -> None:
        ready.set()
        asked = session.wait_for_reply(pubsub, dict, timeout=5)
        reply_to = asked["reply_to"].removeprefix(session.prefix + ":")
        session.publish(reply_to, {"answer": asked["text"].upper()})

    responder = threading.Thread(target=answer)
    responder.start()
    ready.wait(5)
    try:
        assert session.publish_and_wait_reply("questions", {"text": "why"}, dict, timeout=5) == {"answer": "WHY"}
    finally:
        responder.join(5)
        pubsub.close()
    if session.sharded:  # SPUBLISH counts the channel's subscribers exactly
        with pytest.raises(NoResponders):
            session.publish_and_wait_reply("nobody-here", {"text": "?"}, timeout=5)


def test_the_broker_needs_sharded_pub_sub_on_a_cluster(cluster: Cluster) -> None:
    ext = FlaskRedisSingle({"URL": cluster.url, "SHARDED_PUBSUB": False})
    with pytest.raises(ConfigurationError, match="SHARDED_PUBSUB"):
        ext.broker.start()
    ext.getCluster().close()


def test_ping_lists_every_node(cluster: Cluster, tmp_path: Path) -> None:
    from flask import Flask

    app = Flask("cluster-ping")
    app.config["REDIS"] = {"URL": cluster.url}
    FlaskRedisSingle(app)
    result = app.test_cli_runner().invoke(args=["redis", "ping"])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()]
    assert sum(1 for line in lines if line[:1] == ["primary"]) == 3
    assert sum(1 for line in lines if line[:1] == ["replica"]) == 3
