"""Configuration that is wrong, contradictory or shadowed: errors that name the key, the problem and the form."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask

from flask_multi_redis import (
    ConfigurationError,
    FlaskRedisMulti,
    FlaskRedisSingle,
    IRedisMultiConfig,
    IRedisSimpleConfig,
    RedisSession,
)

from .test_config import CustomRedis

MakeApp = Callable[..., Flask]


from .test_config import kwargs_of  # noqa: E402

# --- wrong config --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "key", "fragment"),
    [
        ({"PORT": "abc"}, "REDIS.PORT", "1 to 65535"),
        ({"PORT": 70000}, "REDIS.PORT", "1 to 65535"),
        ({"DATABASE": -1}, "REDIS.DATABASE", "at least 0"),
        ({"SCHEMA": "http"}, "REDIS.SCHEMA", "redis, rediss, unix"),
        ({"PROT": 6379}, "REDIS.PROT", "not a known key"),
        ({"SOCKET_TIMEOUT": 0}, "REDIS.SOCKET_TIMEOUT", "above 0"),
        ({"MAX_CONNECTIONS": 0}, "REDIS.MAX_CONNECTIONS", "at least 1"),
        ({"CLASS": "no.such.Module"}, "REDIS.CLASS", "cannot import"),
        ({"CLASS": "builtins.dict"}, "REDIS.CLASS", "redis.Redis subclass"),
        ({"OPTIONS": {"bogus_option": 1}}, "REDIS.OPTIONS", "bogus_option"),
        ({"OPTIONS": {"single_connection_client": True}}, "REDIS.OPTIONS", "getRedis(...).client()"),
        ({"URL": "http://h.local"}, "REDIS.URL", "redis://, rediss:// or unix://"),
        ({"URL": "redis://h.local/abc"}, "REDIS.URL", "database index"),
        ({"URL": "redis://h.local:99999999"}, "REDIS.URL", "not a valid Redis URL"),
        ({"SSL_CA_CERTS": "/etc/hostname"}, "REDIS.SSL_CA_CERTS", "rediss"),
        ({"SCHEMA": "rediss", "SSL_CA_CERTS": "/no/such/ca.pem"}, "REDIS.SSL_CA_CERTS", "no such file"),
        ({"SCHEMA": "unix"}, "REDIS.UNIX_SOCKET_PATH", "required"),
        ({"DATABASES": {"a": 0}}, "REDIS.DATABASES", "FlaskRedisMulti"),
        # a value given twice, or in the wrong place
        ({"HOST": "h", "UNIX_SOCKET_PATH": "/s"}, "REDIS.UNIX_SOCKET_PATH", "not both"),
        ({"SCHEMA": "redis", "UNIX_SOCKET_PATH": "/s"}, "REDIS.SCHEMA", "unix socket"),
        ({"port": 1111, "PORT": 2222}, "REDIS", "PORT is given twice"),
        ({"OPTIONS": {"db": 5}}, "REDIS.OPTIONS", "DATABASE"),
        ({"URL": "redis://h/0?foo=bar"}, "REDIS.URL", "unknown query argument(s): foo"),
    ],
)
def test_wrong_single_config_names_the_key_problem_and_form(config: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        FlaskRedisSingle(config)
    assert caught.value.key == key
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(key + ": ")


@pytest.mark.parametrize(
    ("config", "key", "fragment"),
    [
        ({"HOST": "h"}, "REDIS.DATABASES", "required by FlaskRedisMulti"),
        ({"DATABASES": {}}, "REDIS.DATABASES", "name -> database index"),
        ({"DATABASES": {"a": "x"}}, "REDIS.DATABASES.a.DATABASE", "at least 0"),
        ({"DATABASES": {"a": {"PORT": "x"}}}, "REDIS.DATABASES.a.PORT", "1 to 65535"),
        (
            {"DATABASES": {"a": {"URL": "redis://h/1", "DATABASE": 2}}},
            "REDIS.DATABASES.a.DATABASE",
            "REDIS.DATABASES.a.URL",
        ),
    ],
)
def test_wrong_multi_config_names_the_key(config: dict[str, Any], key: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        FlaskRedisMulti(config)
    assert caught.value.key == key
    assert fragment in str(caught.value)


def test_wrong_flat_key_is_named_as_written(make_app: MakeApp) -> None:
    with pytest.raises(ConfigurationError) as caught:
        FlaskRedisSingle(make_app(REDIS_DB="first"))
    assert caught.value.key == "REDIS_DB"


def test_config_errors_are_value_errors_and_flask_redis_errors() -> None:
    from flask_multi_redis import FlaskRedisError

    with pytest.raises(ConfigurationError) as caught:
        FlaskRedisSingle({"PORT": "x"})
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, FlaskRedisError)


def test_model_of_the_wrong_kind_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="IRedisMultiConfig"):
        FlaskRedisMulti(IRedisSimpleConfig(HOST="h"))
    with pytest.raises(ConfigurationError, match="IRedisSimpleConfig"):
        FlaskRedisSingle(IRedisMultiConfig(DATABASES={"a": 0}))


def test_source_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not a Redis configuration"):
        FlaskRedisSingle(42)  # type: ignore[arg-type]


def test_flask_and_redis_charset_and_errors_aliases(make_app: MakeApp) -> None:
    app = make_app(REDIS_HOST="h", REDIS_CHARSET="latin-1", REDIS_ERRORS="replace")
    ext = FlaskRedisSingle(app)
    with app.app_context():
        kwargs = kwargs_of(ext)
    assert (kwargs["encoding"], kwargs["encoding_errors"]) == ("latin-1", "replace")


def test_flat_databases_for_multi(make_app: MakeApp) -> None:
    app = make_app(REDIS_URL="redis://h.local:6390", REDIS_DATABASES={"General": 0, "Jobs": {"DATABASE": 3}})
    ext = FlaskRedisMulti(app)
    with app.app_context():
        assert ext.addresses() == {"General": "redis://h.local:6390/0", "Jobs": "redis://h.local:6390/3"}
    with pytest.raises(ConfigurationError) as caught:
        FlaskRedisMulti(make_app(REDIS_DATABASES={"Jobs": {"PORT": "x"}}))
    assert caught.value.key == "REDIS_DATABASES.Jobs.PORT"


def test_override_with_its_own_server_inherits_no_location() -> None:
    ext = FlaskRedisMulti(
        {"URL": "unix:///run/redis.sock", "DATABASES": {"local": 0, "remote": {"HOST": "10.0.0.2", "PORT": 6390}}}
    )
    assert kwargs_of(ext, "remote")["host"] == "10.0.0.2"
    assert "path" not in kwargs_of(ext, "remote")
    assert kwargs_of(ext, "local")["path"] == "/run/redis.sock"


def test_mixed_tls_and_plain_databases(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    ext = FlaskRedisMulti(
        {
            "URL": "rediss://secure.local:6390",
            "SSL_CA_CERTS": str(ca),
            "DATABASES": {"secure": 0, "plain": {"URL": "redis://plain.local/2"}},
        }
    )
    assert ext.getRedis("secure").connection_pool.connection_class is redis.SSLConnection
    plain = kwargs_of(ext, "plain")
    assert (plain["host"], plain["port"], plain["db"]) == ("plain.local", 6379, 2)
    assert "ssl_ca_certs" not in plain


def test_model_inside_flask_config(make_app: MakeApp) -> None:
    app = make_app(REDIS=IRedisMultiConfig(HOST="m", DATABASES={"General": 3}))
    ext = FlaskRedisMulti(app)
    with app.app_context():
        assert ext.getRedis("General").database == 3


class SessionSubclass(RedisSession):
    pass


def test_client_class_that_is_already_a_session() -> None:
    session = FlaskRedisSingle({"CLASS": SessionSubclass, "PREFIX": "p"}).getRedis()
    assert type(session) is SessionSubclass
    assert session.prefix == "p"
    assert type(FlaskRedisSingle({"CLASS": CustomRedis}).getRedis()).__module__ == "flask_multi_redis.connection"


def test_flat_keys_beside_a_nested_section_are_reported_as_ignored(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(REDIS={"HOST": "nested"}, REDIS_HOST="flat", REDIS_URL="redis://flat:1/0", REDIS_CACHE_X="y")
    with caplog.at_level(logging.WARNING):
        ext = FlaskRedisSingle(app)
    with app.app_context():
        assert kwargs_of(ext)["host"] == "nested"
    assert "REDIS_HOST, REDIS_URL" in caplog.text
    assert "nested REDIS section is used" in caplog.text
    assert "REDIS_CACHE_X" not in caplog.text  # another extension's key: not ours to judge
