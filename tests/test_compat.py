"""The drop-in layers, tested against what Flask-And-Redis's and flask-redis's documentation say they do:
the constructor and init_app signatures, config prefixes, REDIS_URL precedence, commands on the extension, the
app.extensions layout, unix sockets, custom classes and providers, and the errors of misuse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.compat.flask_and_redis import Redis
from flask_multi_redis.compat.flask_redis import FlaskRedis

from .servers import RedisServer

MakeApp = Callable[..., Flask]


class Custom(redis.Redis):
    """A user's own client class (Flask-And-Redis's REDIS_CLASS, flask-redis's custom provider)."""


# --- Flask-And-Redis ----------------------------------------------------------------------------------------


def test_flask_and_redis_usage(make_app: MakeApp, redis_server: RedisServer, redis_url: str) -> None:
    app = make_app(REDIS_HOST=redis_server.host, REDIS_PORT=redis_server.port, REDIS_DB=2)
    store = Redis(app)
    store.set("property", "value")  # the connection's methods, on the extension
    assert store.get("property") == b"value"
    assert isinstance(store.connection, redis.Redis)
    assert app.extensions["redis"] == {"REDIS": store.connection}  # keyed by config prefix
    assert store.connection.connection_pool.connection_kwargs["db"] == 2
    later = Redis()
    factory_app = make_app(REDIS_URL=redis_url)
    later.init_app(factory_app)  # application factories
    assert later.get("property") is None  # database 0


def test_flask_and_redis_config_prefix_and_two_databases(make_app: MakeApp, redis_server: RedisServer) -> None:
    app = make_app(REDIS_HOST=redis_server.host, REDIS_PORT=redis_server.port, REDIS_DB=0)
    first = Redis(app)
    app.config["REDIS2_URL"] = f"{redis_server.url}/1"
    second = Redis(app, "REDIS2")  # positional: the config prefix
    first.set("where", "zero")
    second.set("where", "one")
    assert (first.get("where"), second.get("where")) == (b"zero", b"one")
    assert set(app.extensions["redis"]) == {"REDIS", "REDIS2"}
    with pytest.raises(ValueError, match="Already registered config prefix 'REDIS2'"):
        Redis(app, config_prefix="REDIS2")
    third = Redis()
    third.init_app(make_app(CACHE_URL=redis_server.url + "/3"), config_prefix="CACHE")
    assert third.connection is not None
    assert third.connection.connection_pool.connection_kwargs["db"] == 3


def test_flask_and_redis_url_wins_over_the_keys_it_carries(make_app: MakeApp, redis_server: RedisServer) -> None:
    app = make_app(
        REDIS_HOST="nowhere.invalid",
        REDIS_PORT=1,
        REDIS_DB=9,
        REDIS_URL=f"{redis_server.url}/12/",  # a trailing slash, as Flask-And-Redis strips it
        REDIS_SOCKET_TIMEOUT=7,  # not in the URL: still applies
        REDIS_DECODE_RESPONSES=True,
    )
    store = Redis(app)
    store.set("k", "v")
    assert store.get("k") == "v"
    assert store.connection is not None
    kwargs = store.connection.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"], kwargs["socket_timeout"]) == (
        redis_server.host,
        redis_server.port,
        12,
        7,
    )


@pytest.mark.parametrize("form", ["plain", "file://", "UNIX_SOCKET_PATH"])
def test_flask_and_redis_unix_socket(make_app: MakeApp, redis_server: RedisServer, form: str) -> None:
    path = str(redis_server.unixsocket)
    if form == "UNIX_SOCKET_PATH":
        app = make_app(REDIS_UNIX_SOCKET_PATH=path)
    else:
        app = make_app(REDIS_HOST=path if form == "plain" else f"file://{path}")
    assert Redis(app).ping()


def test_flask_and_redis_class(make_app: MakeApp, redis_url: str) -> None:
    for given in (Custom, f"{__name__}.Custom"):
        store = Redis(make_app(REDIS_URL=redis_url, REDIS_CLASS=given))
        assert isinstance(store.connection, Custom)


def test_flask_and_redis_outside_an_app_context_and_before_init(make_app: MakeApp, redis_url: str) -> None:
    store = Redis()
    with pytest.raises(AttributeError, match="no client yet: call init_app"):
        store.get("k")
    store.init_app(make_app(REDIS_URL=redis_url))
    assert store.incr("count") == 1  # no app context needed, as with Flask-And-Redis


# --- flask-redis --------------------------------------------------------------------------------------------


def test_flask_redis_usage(make_app: MakeApp, redis_url: str) -> None:
    app = make_app(REDIS_URL=redis_url)
    redis_client = FlaskRedis(app)
    redis_client.set("potato", "mashed")
    assert redis_client.get("potato") == b"mashed"
    assert app.extensions["redis"] is redis_client
    redis_client["chips"] = "salted"  # the client's item protocol
    assert redis_client["chips"] == b"salted"
    del redis_client["chips"]
    assert "chips" not in redis_client
    with redis_client.pipeline() as pipe:
        pipe.incr("n")
        pipe.incr("n")
        assert pipe.execute() == [1, 2]
    assert isinstance(redis_client.extension, FlaskRedisSingle)


def test_flask_redis_factory_prefix_strict_and_kwargs(make_app: MakeApp, redis_url: str) -> None:
    redis_client = FlaskRedis(strict=False, config_prefix="OTHER_REDIS", decode_responses=True)
    app = make_app(OTHER_REDIS_URL=redis_url + "/4")
    redis_client.init_app(app, socket_timeout=3)  # added to the constructor's keywords
    redis_client.set("k", "v")
    assert redis_client.get("k") == "v"
    assert app.extensions["other_redis"] is redis_client
    kwargs = redis_client.connection_pool.connection_kwargs
    assert (kwargs["db"], kwargs["socket_timeout"]) == (4, 3)


def test_flask_redis_default_url_and_unix_socket(make_app: MakeApp, redis_server: RedisServer) -> None:
    default = FlaskRedis(make_app())  # no REDIS_URL: redis://localhost:6379/0 (not connected here)
    kwargs = default.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("localhost", 6379, 0)
    unix = FlaskRedis(make_app(REDIS_URL=f"unix://{redis_server.unixsocket}?db=5"))
    assert unix.ping()
    assert unix.connection_pool.connection_kwargs["db"] == 5


def test_flask_redis_custom_provider(make_app: MakeApp, redis_url: str) -> None:
    made: list[tuple[str, dict[str, Any]]] = []

    class Provider(Custom):
        @classmethod
        def from_url(cls, url: str, **kwargs: Any) -> Any:
            made.append((url, kwargs))
            return super().from_url(url, **kwargs)

    redis_client = FlaskRedis.from_custom_provider(Provider, make_app(REDIS_URL=redis_url), socket_timeout=2)
    assert made == [(redis_url, {"socket_timeout": 2})]
    assert redis_client.set("k", "v")
    assert isinstance(redis_client._commands(), Provider)
    later = FlaskRedis.from_custom_provider(Provider)
    later.init_app(make_app(REDIS_URL=redis_url))
    assert later.get("k") == b"v"
    with pytest.raises(TypeError, match="not None"):
        FlaskRedis.from_custom_provider(None)
