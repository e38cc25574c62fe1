"""Fixtures: redis-server processes the tests start themselves, and Flask apps configured for them."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask

from flask_multi_redis import FlaskRedisSingle, RedisSession

from .faults import TABLE
from .processes import serve_web, start_serve, start_worker  # noqa: F401 - fixtures for every test module
from .servers import ACLUser, RedisServer, TLSFiles
from .sessions import close_sessions, make_session
from .topologies import Cluster, SentinelSet

ServerFactory = Callable[..., RedisServer]


@pytest.fixture(scope="session")
def redis_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """Start redis-server processes on demand; every one is stopped at the end of the session."""
    started: list[RedisServer] = []

    def start(**options: object) -> RedisServer:
        server = RedisServer(tmp_path_factory.mktemp("redis"), **options)  # type: ignore[arg-type]
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A Redis Cluster (three primaries, a replica each) shared by the session, for tests that do not fail it
    over."""
    cluster = Cluster.start(tmp_path_factory.mktemp("cluster"))
    yield cluster
    cluster.stop()


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    """A primary, its replicas and three sentinels of this test's own, which it may fail over, switch over or
    silence."""
    topology = SentinelSet.start(tmp_path)
    yield topology
    topology.stop()


@pytest.fixture(scope="session")
def redis_server(redis_server_factory: ServerFactory) -> RedisServer:
    """A plain server shared by the session; see ``redis_url`` for a clean one per test."""
    return redis_server_factory()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the shared plain server, emptied for this test (ours, never the machine's 6379)."""
    redis_server.admin().flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def password_server(redis_server_factory: ServerFactory) -> RedisServer:
    return redis_server_factory(password="p@ss:w/rd %secret")


@pytest.fixture(scope="session")
def acl_server(redis_server_factory: ServerFactory) -> RedisServer:
    return redis_server_factory(password="default-secret", user=ACLUser("alice", "alice:s3cret/pw"))


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    return TLSFiles.generate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def tls_server(redis_server_factory: ServerFactory, tls_files: TLSFiles) -> RedisServer:
    return redis_server_factory(tls=tls_files)


@pytest.fixture
def make_app() -> Callable[..., Flask]:
    """A Flask app whose config is the given keys."""

    def make(**config: object) -> Flask:
        app = Flask("test_app")
        app.config.update(config)
        return app

    return make


@pytest.fixture
def tmp_file(tmp_path: Path) -> Path:
    path = tmp_path / "file.pem"
    path.write_text("not a certificate")
    return path


ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def broker_server(redis_server: RedisServer) -> RedisServer:
    """The server the broker tests use: the shared one, emptied; a test module may override it with its own."""
    redis_server.admin().flushall()
    return redis_server


@pytest.fixture
def broker_env(broker_server: RedisServer) -> dict[str, str]:
    """Environment for processes that run tests/apps: our server, and a prefix of this test's own."""
    return {
        **os.environ,
        "REDIS_URL": broker_server.url,
        "REDIS_PREFIX": f"t{secrets.token_hex(4)}",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def spawn_backend(broker_env: dict[str, str]) -> Iterator[Callable[[], subprocess.Popen[str]]]:
    """Start tests/apps/serve.py processes (they serve svc.backend); each is stopped at teardown."""
    started: list[subprocess.Popen[str]] = []

    def spawn() -> subprocess.Popen[str]:
        process = start_serve(broker_env)
        started.append(process)
        return process

    yield spawn
    for process in started:
        process.terminate()
    for process in started:
        process.wait(10)
        assert process.stdout is not None
        process.stdout.close()


@pytest.fixture
def caller(broker_env: dict[str, str]) -> Iterator[FlaskRedisSingle]:
    """An extension configured from a dict, as a script or a web process without routes would use it."""
    ext = FlaskRedisSingle({"URL": broker_env["REDIS_URL"], "PREFIX": broker_env["REDIS_PREFIX"]})
    yield ext
    close_sessions(ext)


# --- sessions (tests/sessions.py) ------------------------------------------------------------------------------


@pytest.fixture
def sessions() -> Iterator[list[RedisSession]]:
    """Sessions a test creates; their connections are closed afterwards."""
    created: list[RedisSession] = []
    yield created
    for session in created:
        session.connection_pool.disconnect()


@pytest.fixture
def session(redis_url: str, sessions: list[RedisSession]) -> RedisSession:
    created = make_session(redis_url, PREFIX="test")
    sessions.append(created)
    return created


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client that knows nothing of prefixes."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def text_session(redis_url: str, sessions: list[RedisSession]) -> RedisSession:
    created = make_session(redis_url, PREFIX="test", client_kwargs={"decode_responses": True})
    sessions.append(created)
    return created


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The fault table of the scenarios that ran (tests/faults.py); with FAULT_TABLE set, written there too."""
    if TABLE.rows:
        terminalreporter.write_sep("-", "fault table")
        terminalreporter.write_line(TABLE.markdown())
        TABLE.write()
