"""The README's migration table, row by row: each test is named after its row's number, and every row has one."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import redis
from flask import Flask

from flask_multi_redis import FlaskRedisSingle, NotInitializedError
from flask_multi_redis.compat.flask_and_redis import Redis
from flask_multi_redis.compat.flask_redis import FlaskRedis

from .conftest import ROOT
from .servers import RedisServer

MakeApp = Callable[..., Flask]


class MyRedis(redis.Redis):
    """A user's client class."""


def test_every_row_has_a_test() -> None:
    section = (ROOT / "README.md").read_text().split("## Migrating", 1)[1].split("\n## ", 1)[0]
    rows = [int(n) for n in re.findall(r"^\| (\d+) \|", section, re.MULTILINE)]
    assert rows == list(range(1, len(rows) + 1))
    tested = {int(name.split("_")[2]) for name in globals() if name.startswith("test_row_")}
    assert tested == set(rows)


def test_row_1_flask_and_redis_import(make_app: MakeApp, redis_url: str) -> None:
    redis_store = Redis(make_app(REDIS_URL=redis_url))
    assert redis_store.set("k", "v")
    assert redis_store.get("k") == b"v"


def test_row_2_a_config_prefix(make_app: MakeApp, redis_url: str) -> None:
    app = make_app(REDIS2_URL=f"{redis_url}/2")
    assert Redis(app, "REDIS2").connection_pool.connection_kwargs["db"] == 2
    native = FlaskRedisSingle(app, config_element="REDIS2")
    assert native.getRedis().database == 2


def test_row_3_the_url_wins(make_app: MakeApp, redis_url: str) -> None:
    assert Redis(make_app(REDIS_URL=redis_url, REDIS_HOST="nowhere.invalid")).ping()


def test_row_4_the_connection(make_app: MakeApp, redis_url: str) -> None:
    app = make_app(REDIS_URL=redis_url)
    redis_store = Redis(app)
    assert app.extensions["redis"]["REDIS"] is redis_store.connection
    app = make_app(REDIS_URL=redis_url)
    assert FlaskRedisSingle(app).getRedis().ping()


def test_row_5_unix_socket_and_class(make_app: MakeApp, redis_server: RedisServer) -> None:
    path = str(redis_server.unixsocket)
    redis_store = Redis(make_app(REDIS_HOST=f"file://{path}", REDIS_CLASS=MyRedis))
    assert isinstance(redis_store.connection, MyRedis)
    assert redis_store.ping()
    app = make_app(REDIS={"HOST": path, "CLASS": MyRedis})
    native = FlaskRedisSingle(app).getRedis()
    assert isinstance(native, MyRedis)
    assert native.ping()


def test_row_6_flask_redis_import(make_app: MakeApp, redis_url: str) -> None:
    redis_client = FlaskRedis(make_app(REDIS_URL=redis_url))
    assert redis_client.set("potato", "mashed")


def test_row_7_prefix_and_client_keywords(make_app: MakeApp, redis_url: str) -> None:
    app = make_app(OTHER_URL=redis_url)
    redis_client = FlaskRedis(app, config_prefix="OTHER", decode_responses=True)
    redis_client.set("k", "v")
    assert redis_client.get("k") == "v"
    other = make_app(OTHER_URL=redis_url)
    native = FlaskRedisSingle(other, config_element="OTHER", decode_responses=True)
    assert native.get("k") == "v"


def test_row_8_a_custom_provider(make_app: MakeApp, redis_url: str) -> None:
    redis_client = FlaskRedis.from_custom_provider(MyRedis, make_app(REDIS_URL=redis_url))
    assert isinstance(redis_client._commands(), MyRedis)
    app = make_app(REDIS_URL=redis_url, REDIS_CLASS=MyRedis)
    native = FlaskRedisSingle(app).getRedis()
    assert isinstance(native, MyRedis)


def test_row_9_commands_on_the_extension(make_app: MakeApp, redis_url: str) -> None:
    app = make_app(REDIS_URL=redis_url)
    ext = FlaskRedisSingle(app)
    ext["k"] = "v"
    assert ext["k"] == b"v"
    assert ext.get("potato") is None


def test_row_10_outside_an_app_context(make_app: MakeApp, redis_url: str) -> None:
    one = make_app(REDIS_URL=redis_url)
    ext = FlaskRedisSingle(one)
    assert ext.ping()
    two = make_app(REDIS_URL=redis_url)
    ext.init_app(two)
    with pytest.raises(NotInitializedError, match="bound to several apps"):
        ext.ping()


def test_row_11_flask_multi_redis_unchanged(make_app: MakeApp, redis_url: str) -> None:
    app = make_app(REDIS={"URL": redis_url, "DATABASE": 1, "NAME": "ExampleDatabase"})
    FlaskRedisSingle(app, strict=False)
    with app.app_context():
        from flask import current_app

        session = current_app.extensions["redis"].getRedis("ExampleDatabase")
        session.set("property", "value")
        assert session.get("property") == b"value"


def test_row_12_publish_subscribe_wait(redis_url: str) -> None:
    session = FlaskRedisSingle({"URL": redis_url}).getRedis()
    pubsub = session.subscribe("q")
    session.publish("q", "Hello world")
    assert session.wait_for_reply(pubsub, str, timeout=5, encoding="utf-8") == "Hello world"
    pubsub.close()
