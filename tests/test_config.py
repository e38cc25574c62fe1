"""Configuration: every source, key and URL form, and the precedence rule (wrong config: test_config_errors.py)."""

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
)

MakeApp = Callable[..., Flask]


def kwargs_of(ext: FlaskRedisSingle | FlaskRedisMulti, name: str | None = None) -> dict[str, Any]:
    """The connection keyword arguments the client of a database was built with."""
    return dict(ext.getRedis(name).connection_pool.connection_kwargs)


# --- sources -------------------------------------------------------------------------------------------------


def test_nested_section_in_flask_config(make_app: MakeApp) -> None:
    app = make_app(REDIS={"HOST": "cache.local", "PORT": 6380, "DATABASE": 2, "NAME": "General", "PREFIX": "dev"})
    ext = FlaskRedisSingle(app)
    with app.app_context():
        session = ext.getRedis("General")
        assert (session.name, session.database, session.prefix) == ("General", 2, "dev")
        assert kwargs_of(ext)["host"] == "cache.local"
        assert kwargs_of(ext)["port"] == 6380


def test_keys_are_case_insensitive(make_app: MakeApp) -> None:
    app = make_app(REDIS={"host": "h", "port": "6390", "database": "4"})
    ext = FlaskRedisSingle(app)
    with app.app_context():
        assert (kwargs_of(ext)["host"], kwargs_of(ext)["port"], kwargs_of(ext)["db"]) == ("h", 6390, 4)


def test_flat_keys_in_the_style_of_flask_and_redis(make_app: MakeApp) -> None:
    app = make_app(
        REDIS_HOST="flat.local",
        REDIS_PORT="6381",
        REDIS_DB=5,
        REDIS_USERNAME="bob",
        REDIS_PASSWORD="pw",
        REDIS_SOCKET_TIMEOUT=2.5,
        REDIS_DECODE_RESPONSES=True,
        REDIS_CLASS="redis.Redis",
    )
    ext = FlaskRedisSingle(app)
    with app.app_context():
        kwargs = kwargs_of(ext)
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("flat.local", 6381, 5)
    assert (kwargs["username"], kwargs["password"]) == ("bob", "pw")
    assert kwargs["socket_timeout"] == 2.5
    assert kwargs["decode_responses"] is True


def test_flat_url_and_unix_socket_keys(make_app: MakeApp) -> None:
    app = make_app(REDIS_URL="redis://flat.local:6382/7")
    ext = FlaskRedisSingle(app)
    with app.app_context():
        assert (kwargs_of(ext)["host"], kwargs_of(ext)["port"], kwargs_of(ext)["db"]) == ("flat.local", 6382, 7)
    app = make_app(REDIS_UNIX_SOCKET_PATH="/run/redis.sock", REDIS_DB=1)
    ext = FlaskRedisSingle(app)
    with app.app_context():
        assert kwargs_of(ext)["path"] == "/run/redis.sock"


def test_flat_keys_with_another_config_element(make_app: MakeApp) -> None:
    app = make_app(REDIS_HOST="first", CACHE_URL="redis://second:6390/3")
    first = FlaskRedisSingle(app)
    second = FlaskRedisSingle(app, config_element="CACHE")
    with app.app_context():
        assert kwargs_of(first)["host"] == "first"
        assert (kwargs_of(second)["host"], kwargs_of(second)["db"]) == ("second", 3)
    assert app.extensions["redis"] is first
    assert app.extensions["cache"] is second


def test_flat_redis_kwargs_pass_through_and_unknown_keys_are_reported(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(REDIS_HOST="h", REDIS_SOCKET_READ_SIZE=1024, REDIS_WHATEVER="x")
    with caplog.at_level(logging.WARNING):
        ext = FlaskRedisSingle(app)
    with app.app_context():
        assert kwargs_of(ext)["socket_read_size"] == 1024
    assert "REDIS_WHATEVER" in caplog.text


def test_flask_and_redis_unix_socket_path_in_host(make_app: MakeApp) -> None:
    app = make_app(REDIS_HOST="/tmp/redis.sock")
    ext = FlaskRedisSingle(app)
    with app.app_context():
        assert kwargs_of(ext)["path"] == "/tmp/redis.sock"
        assert ext.addresses() == {"default": "unix:///tmp/redis.sock?db=0"}


def test_dict_model_and_url_sources_need_no_app() -> None:
    from_dict = FlaskRedisSingle({"HOST": "d", "DATABASE": 1})
    from_model = FlaskRedisSingle(IRedisSimpleConfig(HOST="m", DATABASE=2))
    from_url = FlaskRedisSingle("redis://u:6379/3")
    assert kwargs_of(from_dict)["host"] == "d"
    assert kwargs_of(from_model)["db"] == 2
    assert kwargs_of(from_url)["db"] == 3


def test_dict_config_binds_to_an_app_with_init_app(make_app: MakeApp) -> None:
    ext = FlaskRedisMulti({"HOST": "bound", "DATABASES": {"General": 0, "Jobs": 1}})
    app = make_app(REDIS={"HOST": "ignored", "DATABASES": {"Other": 9}})
    ext.init_app(app)
    with app.app_context():
        assert ext.databases == ["General", "Jobs"]
        assert kwargs_of(ext, "Jobs")["host"] == "bound"


def test_multi_model_with_per_database_overrides() -> None:
    config = IRedisMultiConfig(
        HOST="main.local",
        PASSWORD="top-secret",
        PREFIX="prod",
        DATABASES={
            "General": 0,
            "Sessions": {"DATABASE": 4},
            "Remote": {"URL": "redis://other.local:6390/2", "PREFIX": "remote"},
            "Private": {"DATABASE": 5, "USERNAME": "svc", "PASSWORD": "svc-pw"},
        },
    )
    ext = FlaskRedisMulti(config)
    assert ext.databases == ["General", "Sessions", "Remote", "Private"]
    general, sessions, remote, private = (kwargs_of(ext, name) for name in ext.databases)
    assert (general["host"], general["db"], general["password"]) == ("main.local", 0, "top-secret")
    assert sessions["db"] == 4
    assert (remote["host"], remote["port"], remote["db"], remote["password"]) == ("other.local", 6390, 2, "top-secret")
    assert (private["username"], private["password"]) == ("svc", "svc-pw")
    assert ext.getRedis("General").prefix == "prod"
    assert ext.getRedis("Remote").prefix == "remote"


def test_yaml_config_as_in_the_original_readme(tmp_path: Path) -> None:
    yaml = pytest.importorskip("yaml")
    text = """
REDIS:
  HOST:       localhost.localzone
  PASSWORD:   a-secure-password
  PORT:       6379
  DATABASES:
    General:            0
    ExampleDatabase:    1
    OtherDatabase:      2
"""
    app = Flask("yaml_app")
    app.config.update(yaml.safe_load(text))
    ext = FlaskRedisMulti(app, strict=False)
    with app.app_context():
        session = ext.getRedis("ExampleDatabase")
        assert session.database == 1
        assert ext.getRedis(2).name == "OtherDatabase"


def test_constructor_prefix_is_the_default_and_config_prefix_wins() -> None:
    assert FlaskRedisSingle({"HOST": "h"}, prefix="env").getRedis().prefix == "env"
    assert FlaskRedisSingle({"HOST": "h", "PREFIX": "cfg"}, prefix="env").getRedis().prefix == "cfg"


def test_client_settings_reach_the_connection(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    ext = FlaskRedisSingle(
        {
            "SCHEMA": "rediss",
            "HOST": "h",
            "SOCKET_TIMEOUT": 1.5,
            "SOCKET_CONNECT_TIMEOUT": 0.5,
            "HEALTH_CHECK_INTERVAL": 10,
            "MAX_CONNECTIONS": 7,
            "CLIENT_NAME": "web",
            "DECODE_RESPONSES": True,
            "SSL_CA_CERTS": str(ca),
            "SSL_CERT_REQS": "required",
            "SSL_CHECK_HOSTNAME": False,
            "OPTIONS": {"encoding_errors": "replace"},
        }
    )
    session = ext.getRedis()
    kwargs = kwargs_of(ext)
    assert kwargs["socket_timeout"] == 1.5
    assert kwargs["socket_connect_timeout"] == 0.5
    assert kwargs["health_check_interval"] == 10
    assert kwargs["client_name"] == "web"
    assert kwargs["decode_responses"] is True
    assert kwargs["ssl_ca_certs"] == str(ca)
    assert kwargs["ssl_check_hostname"] is False
    assert kwargs["encoding_errors"] == "replace"
    assert session.connection_pool.max_connections == 7
    assert session.connection_pool.connection_class is redis.SSLConnection


def test_extension_kwargs_reach_the_client_unchanged() -> None:
    ext = FlaskRedisSingle({"HOST": "h", "SOCKET_TIMEOUT": 9}, decode_responses=True, socket_timeout=3)
    assert kwargs_of(ext)["decode_responses"] is True
    assert kwargs_of(ext)["socket_timeout"] == 3


def test_a_single_connection_client_is_refused_before_it_connects() -> None:
    """redis-py would connect inside the constructor; the port is closed, so a connection attempt would fail
    with a ConnectionError instead of this ConfigurationError."""
    with pytest.raises(ConfigurationError, match=r"getRedis\(\.\.\.\)\.client\(\)") as caught:
        FlaskRedisSingle({"HOST": "127.0.0.1", "PORT": 1}, single_connection_client=True)
    assert caught.value.key == "single_connection_client"


class CustomRedis(redis.Redis):
    marker = "custom"


@pytest.mark.parametrize("value", [CustomRedis, f"{__name__}.CustomRedis", f"{__name__}:CustomRedis"])
def test_custom_client_class_by_class_or_dotted_path(value: Any) -> None:
    session = FlaskRedisSingle({"CLASS": value}).getRedis()
    assert isinstance(session, CustomRedis)
    assert session.marker == "custom"
    assert session.prefix == ""


def test_strict_is_accepted_either_way() -> None:
    for strict in (True, False):
        ext = FlaskRedisSingle({"HOST": "h"}, strict=strict)
        assert type(ext.getRedis()).__mro__[1] is redis.Redis


# --- URL forms -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://h.local", {"host": "h.local", "port": 6379, "db": 0}),
        ("redis://h.local:6390/12", {"host": "h.local", "port": 6390, "db": 12}),
        ("redis://h.local:6390/12/", {"db": 12}),
        ("redis://h.local?db=3", {"db": 3}),
        ("redis://:p%40ss%3Aword@h.local/1", {"password": "p@ss:word", "db": 1}),
        ("redis://al%20ice:pw@h.local", {"username": "al ice", "password": "pw"}),
        ("redis://[::1]:6390/0", {"host": "::1", "port": 6390}),
        ("unix:///run/redis/redis.sock?db=4", {"path": "/run/redis/redis.sock", "db": 4}),
        ("redis://h.local?socket_timeout=2.5", {"socket_timeout": 2.5}),
    ],
)
def test_url_forms(url: str, expected: dict[str, Any]) -> None:
    kwargs = kwargs_of(FlaskRedisSingle({"URL": url}))
    assert {key: kwargs.get(key) for key in expected} == expected


def test_rediss_url_selects_tls(tmp_path: Path) -> None:
    session = FlaskRedisSingle("rediss://h.local:6390").getRedis()
    assert session.connection_pool.connection_class is redis.SSLConnection


def test_password_without_username_stays_the_default_user() -> None:
    kwargs = kwargs_of(FlaskRedisSingle({"HOST": "h", "PASSWORD": "pw"}))
    assert kwargs["password"] == "pw"
    assert kwargs.get("username") is None


def test_url_and_explicit_keys_complement_each_other() -> None:
    kwargs = kwargs_of(FlaskRedisSingle({"URL": "rediss://h.local:6390", "DATABASE": 2, "PASSWORD": "pw"}))
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["password"]) == ("h.local", 6390, 2, "pw")


def test_url_and_explicit_key_that_disagree_is_an_error() -> None:
    with pytest.raises(ConfigurationError) as caught:
        FlaskRedisSingle({"URL": "redis://:url-secret@h.local/1", "DATABASE": 2})
    assert caught.value.key == "REDIS.DATABASE"
    assert "REDIS.URL" in str(caught.value)
    assert "url-secret" not in str(caught.value)
    # the same value twice is no conflict
    assert kwargs_of(FlaskRedisSingle({"URL": "redis://h.local/1", "DATABASE": 1}))["db"] == 1
