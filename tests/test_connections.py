"""Real logins and transports: password, ACL user, unix socket and TLS against servers the tests start."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
import redis

from flask_multi_redis import FlaskRedisSingle, IRedisSimpleConfig

from .servers import RedisServer, TLSFiles


def test_password_from_keys(password_server: RedisServer) -> None:
    config = {"HOST": password_server.host, "PORT": password_server.port, "PASSWORD": password_server.password}
    assert FlaskRedisSingle(config).getRedis().ping()


def test_password_from_a_percent_encoded_url(password_server: RedisServer) -> None:
    password = quote(str(password_server.password), safe="")
    url = f"redis://:{password}@{password_server.host}:{password_server.port}/2"
    session = FlaskRedisSingle({"URL": url}).getRedis()
    session.set("k", "v")
    assert password_server.admin().execute_command("SELECT", 2)  # type: ignore[no-untyped-call]
    assert session.get("k") == b"v"


def test_wrong_password_is_refused_without_leaking_it(password_server: RedisServer) -> None:
    config = {"HOST": password_server.host, "PORT": password_server.port, "PASSWORD": "wrong-guess-123"}
    session = FlaskRedisSingle(config, retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0)).getRedis()
    with pytest.raises(redis.AuthenticationError) as caught:
        session.ping()
    assert "wrong-guess-123" not in str(caught.value)
    assert "wrong-guess-123" not in repr(session)


def test_acl_user_from_url_keeps_the_username(acl_server: RedisServer) -> None:
    assert acl_server.user is not None
    user, password = quote(acl_server.user.name, safe=""), quote(acl_server.user.password, safe="")
    session = FlaskRedisSingle(f"redis://{user}:{password}@{acl_server.host}:{acl_server.port}/0").getRedis()
    assert session.acl_whoami() == "alice"


def test_acl_user_from_keys(acl_server: RedisServer) -> None:
    assert acl_server.user is not None
    config = IRedisSimpleConfig(
        HOST=acl_server.host, PORT=acl_server.port, USERNAME=acl_server.user.name, PASSWORD=acl_server.user.password
    )
    assert FlaskRedisSingle(config).getRedis().acl_whoami() == "alice"


def test_password_alone_logs_in_as_the_default_user(acl_server: RedisServer) -> None:
    config = {"HOST": acl_server.host, "PORT": acl_server.port, "PASSWORD": acl_server.password}
    assert FlaskRedisSingle(config).getRedis().acl_whoami() == "default"


def test_unix_socket_by_url_and_by_keys(redis_server: RedisServer) -> None:
    by_url = FlaskRedisSingle(f"unix://{redis_server.unixsocket}?db=3").getRedis()
    by_keys = FlaskRedisSingle({"SCHEMA": "unix", "UNIX_SOCKET_PATH": redis_server.unixsocket, "DATABASE": 3})
    by_url.set("via", "socket")
    assert by_keys.getRedis().get("via") == b"socket"
    assert by_url.connection_pool.connection_class is redis.UnixDomainSocketConnection


def test_tls_verified_against_the_generated_ca(tls_server: RedisServer, tls_files: TLSFiles) -> None:
    config = {"URL": f"rediss://{tls_server.host}:{tls_server.port}/0", "SSL_CA_CERTS": str(tls_files.ca)}
    session = FlaskRedisSingle(config).getRedis()
    assert session.ping()
    assert session.connection_pool.connection_class is redis.SSLConnection


def test_tls_with_schema_key_and_hostname_check(tls_server: RedisServer, tls_files: TLSFiles) -> None:
    config = {
        "SCHEMA": "rediss",
        "HOST": "localhost",
        "PORT": tls_server.port,
        "SSL_CA_CERTS": str(tls_files.ca),
        "SSL_CHECK_HOSTNAME": True,
    }
    assert FlaskRedisSingle(config).getRedis().ping()


def test_tls_refused_with_a_wrong_ca(tls_server: RedisServer, tmp_path: Path) -> None:
    other_ca = TLSFiles.generate(tmp_path / "other").ca
    config = {"URL": f"rediss://{tls_server.host}:{tls_server.port}/0", "SSL_CA_CERTS": str(other_ca)}
    session = FlaskRedisSingle(config, retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0)).getRedis()
    with pytest.raises(redis.ConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        session.ping()


def test_plain_client_cannot_talk_to_a_tls_port(tls_server: RedisServer) -> None:
    session = FlaskRedisSingle(
        {"HOST": tls_server.host, "PORT": tls_server.port, "SOCKET_TIMEOUT": 1},
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
    ).getRedis()
    with pytest.raises(redis.ConnectionError):
        session.ping()
