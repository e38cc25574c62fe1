"""The Redlock on a ClusterSession when the cluster cannot be reached (every node down, as in a restart
of all nodes), against a real cluster of redis-server processes of each test's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from flask_multi_redis import ClusterSession, FlaskRedisSingle
from flask_multi_redis.errors import LockTimeout
from flask_multi_redis.lock import Redlock

from .servers import RedisServer
from .topologies import Cluster
from .waiting import wait_until


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster.start(tmp_path)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def session(own_cluster: Cluster) -> Iterator[ClusterSession]:
    # As the README asks of a lock's clients: a short socket timeout, no retries.
    ext = FlaskRedisSingle(
        {"URL": own_cluster.url, "SOCKET_TIMEOUT": 0.5, "SOCKET_CONNECT_TIMEOUT": 0.5, "RETRY": Retry(NoBackoff(), 0)}
    )
    session = ext.getCluster()
    try:
        yield session
    finally:
        session.close()


def _all_down(cluster: Cluster, session: ClusterSession) -> None:
    """Every node of the cluster killed; the app's own calls on the session meanwhile fail, as they do, with
    redis-py's RedisClusterUnreachableError once its slot map could not be read anew."""
    for node in cluster.nodes:
        node.kill()

    def app_call_failed_as_unreachable() -> bool:
        try:
            session.get("lockedge:anything")
        except redis.exceptions.RedisClusterUnreachableError:
            return True
        except redis.RedisError:
            return False
        return False

    wait_until(app_call_failed_as_unreachable, timeout=10, interval=0.05)


def test_a_lock_on_a_cluster_that_is_down_is_not_acquired(own_cluster: Cluster, session: ClusterSession) -> None:
    """README: a server that is down counts as a no; acquire returns a bool, `with lock:` raises LockTimeout."""
    lock = Redlock("lockedge:lock", session, ttl=2)
    assert lock.acquire(timeout=1)
    lock.release()
    _all_down(own_cluster, session)
    assert Redlock("lockedge:lock", session, ttl=2).acquire(timeout=1) is False
    with pytest.raises(LockTimeout), Redlock("lockedge:lock", session, ttl=2, timeout=1):
        pass


def test_an_auto_renewed_lock_whose_cluster_goes_down_is_marked_lost(
    own_cluster: Cluster, session: ClusterSession
) -> None:
    """README: auto_renew extends it every third of the TTL; a renewal that fails sets `lost`. The TTL (6 s: a
    renewal every 2 s) leaves the kill and the app's failed calls well before the first renewal."""
    lock = Redlock("lockedge:renewed", session, ttl=6, auto_renew=True)
    assert lock.acquire(timeout=1)
    try:
        _all_down(own_cluster, session)
        wait_until(lambda: lock.lost, timeout=20)
    finally:
        lock._stop_renewing.set()


def test_three_servers_one_up_refuse_when_one_is_a_cluster_that_is_down(
    own_cluster: Cluster, session: ClusterSession, redis_server_factory: Callable[..., RedisServer]
) -> None:
    """README: a server that is down counts as a no (with 5 servers, 3 down refuse): here the cluster and one
    standalone server of three are down, and the round must wait for the cluster's no."""
    up, gone = redis_server_factory(), redis_server_factory()
    clients = [
        redis.Redis.from_url(server.url, socket_timeout=0.5, retry=Retry(NoBackoff(), 0)) for server in (up, gone)
    ]
    try:
        gone.stop()
        _all_down(own_cluster, session)
        lock = Redlock("lockedge:majority", [session, *clients], ttl=3)
        assert lock.acquire(timeout=1) is False
    finally:
        for client in clients:
            client.close()
