"""No password reaches a repr, a str, an error message or a log line."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
import redis
from flask import Flask

from flask_multi_redis import ConfigurationError, FlaskRedisMulti, FlaskRedisSingle, IRedisSimpleConfig

from .servers import RedisServer
from .sessions import close_sessions

SECRET = "s3cr3t-Pa55"
MakeApp = Callable[..., Flask]


def test_reprs_hide_the_password(password_server: RedisServer) -> None:
    config = IRedisSimpleConfig(HOST="h", PASSWORD=SECRET, USERNAME="u")
    ext = FlaskRedisSingle(config)
    session = ext.getRedis()
    shown = [repr(config), str(config), repr(ext), repr(session), str(ext.addresses()), repr(session.connection_pool)]
    for text in shown:
        assert SECRET not in text
    assert ext.addresses() == {"default": "redis://u:***@h:6379/0"}


def test_url_credentials_are_masked_in_addresses() -> None:
    ext = FlaskRedisMulti({"URL": f"redis://user:{SECRET}@h:6390", "DATABASES": {"A": 1}})
    assert ext.addresses() == {"A": "redis://user:***@h:6390/1"}


@pytest.mark.parametrize(
    "config",
    [
        {"URL": f"redis://:{SECRET}@h/abc"},
        {"URL": f"redis://:{SECRET}@h:notaport/0"},
        {"URL": f"redis://:{SECRET}@h/1", "DATABASE": 2},
        {"URL": f"redis://:{SECRET}@h/1", "PASSWORD": "other"},
        {"PASSWORD": {"nested": SECRET}},
        {"PASSWORD": SECRET, "PORT": "x"},
    ],
)
def test_configuration_errors_hide_the_password(config: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        FlaskRedisSingle(config)
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)
    assert caught.value.__cause__ is None or SECRET not in str(caught.value.__cause__)


def test_pydantic_errors_from_a_model_hide_the_password() -> None:
    with pytest.raises(ValueError, match="PORT") as caught:
        IRedisSimpleConfig(PASSWORD=SECRET, PORT="x")
    assert SECRET not in str(caught.value)


def test_no_log_line_carries_the_password(
    make_app: MakeApp, password_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = str(password_server.password)
    app = make_app(REDIS_HOST=password_server.host, REDIS_PORT=password_server.port, REDIS_PASSWORD=secret, REDIS_X=1)
    ext = FlaskRedisSingle(app)
    with app.app_context():
        session = ext.getRedis()
        session.set("k", "v")
        pubsub = session.subscribe("chan")
        session.publish("chan", "hello")
        assert session.wait_for_reply(pubsub, str, timeout=2) == "hello"
        pubsub.close()
    wrong = FlaskRedisSingle(
        {"HOST": password_server.host, "PORT": password_server.port, "PASSWORD": SECRET},
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
    )
    with pytest.raises(redis.AuthenticationError):
        wrong.getRedis().ping()
    result = app.test_cli_runner().invoke(args=["redis", "ping"])
    close_sessions(ext, app)
    close_sessions(wrong)
    assert result.exit_code == 0
    assert caplog.records, "expected at least the warning about REDIS_X"
    assert secret not in caplog.text
    assert SECRET not in caplog.text
    assert secret not in result.output


def test_model_repr_masks_a_password_in_the_url() -> None:
    single = IRedisSimpleConfig(URL=f"redis://u:{SECRET}@h/0", OPTIONS={"ssl_password": SECRET})
    multi = FlaskRedisMulti({"URL": f"redis://:{SECRET}@h", "DATABASES": {"a": 0}})
    for text in (repr(single), str(single), repr(multi)):
        assert SECRET not in text
    assert "redis://u:***@h/0" in repr(single)


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:my/{SECRET}@h:6379/0",  # an unencoded / in the password (base64 passwords have them)
        f"redis://default:p@ss:w/rd{SECRET}%@127.0.0.1:6379/0",
        f"redis://h:bad/0?password={SECRET}",
        f"redis://h/0?password={SECRET}&bogus=1",
    ],
)
def test_malformed_urls_are_not_echoed(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        FlaskRedisSingle({"URL": url})
    error = caught.value
    assert SECRET not in str(error)
    for chained in (error.__cause__, error.__context__):
        assert chained is None or SECRET not in str(chained)
