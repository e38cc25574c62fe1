"""Fixtures: redis-server processes the tests start themselves, and Flask apps configured for them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask

from .servers import ACLUser, RedisServer, TLSFiles

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
