"""FlaskRedisSingle / FlaskRedisMulti: init_app, per-app state, getRedis, pools, and the errors of misuse."""

from __future__ import annotations

import copy
import socket
from collections.abc import Callable

import pytest
import redis
from flask import Flask

from flask_multi_redis import (
    FlaskRedisError,
    FlaskRedisMulti,
    FlaskRedisSingle,
    NotInitializedError,
    RedisSession,
    UnknownDatabaseError,
)

MakeApp = Callable[..., Flask]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_single_round_trip_through_the_app(make_app: MakeApp, redis_url: str) -> None:
    app = make_app(REDIS={"URL": redis_url, "DATABASE": 1, "NAME": "ExampleDatabase"})
    FlaskRedisSingle(app)
    with app.app_context():
        from flask import current_app

        session = current_app.extensions["redis"].getRedis("ExampleDatabase")
        session.set("property", "value")
        assert session.get("property") == b"value"
        assert current_app.extensions["redis"].getRedis() is session
        assert isinstance(session, redis.Redis)
        assert isinstance(session, RedisSession)


def test_multi_databases_are_separate(make_app: MakeApp, redis_url: str) -> None:
    app = make_app(REDIS={"URL": redis_url, "DATABASES": {"General": 0, "ExampleDatabase": 1, "OtherDatabase": 2}})
    ext = FlaskRedisMulti(app)
    with app.app_context():
        ext.getRedis("ExampleDatabase").set("k", "one")
        ext.getRedis("OtherDatabase").set("k", "two")
        assert ext.getRedis("General").get("k") is None
        assert ext.getRedis(1).get("k") == b"one"
        assert ext.getRedis(2).get("k") == b"two"


def test_factory_pattern_with_init_app(make_app: MakeApp, redis_url: str) -> None:
    ext = FlaskRedisMulti()
    app = make_app(REDIS={"URL": redis_url, "DATABASES": {"General": 0}})
    ext.init_app(app)
    with app.app_context():
        assert ext.getRedis("General").ping()
    assert app.extensions["redis"] is ext


def test_one_extension_serves_two_apps(make_app: MakeApp, redis_url: str) -> None:
    ext = FlaskRedisSingle()
    first = make_app(REDIS={"URL": redis_url, "DATABASE": 3})
    second = make_app(REDIS={"URL": redis_url, "DATABASE": 4})
    ext.init_app(first)
    ext.init_app(second)
    with first.app_context():
        ext.getRedis().set("app", "first")
    with second.app_context():
        ext.getRedis().set("app", "second")
        assert ext.getRedis().database == 4
    with first.app_context():
        assert ext.getRedis().get("app") == b"first"


def test_two_extensions_in_one_app(make_app: MakeApp, redis_url: str) -> None:
    app = make_app(REDIS={"URL": redis_url, "DATABASE": 0}, CACHE={"URL": redis_url, "DATABASE": 5})
    main = FlaskRedisSingle(app)
    cache = FlaskRedisSingle(app, config_element="CACHE")
    with app.app_context():
        cache.getRedis().set("where", "cache")
        assert main.getRedis().get("where") is None
        assert app.extensions["cache"].getRedis().get("where") == b"cache"
    assert app.extensions["redis"] is main


def test_init_app_twice_or_on_a_taken_key_is_refused(make_app: MakeApp) -> None:
    app = make_app(REDIS={"HOST": "h"})
    ext = FlaskRedisSingle(app)
    with pytest.raises(FlaskRedisError, match="already registered"):
        ext.init_app(app)
    with pytest.raises(FlaskRedisError, match="another config_element"):
        FlaskRedisSingle(app)


def test_use_with_an_app_it_was_never_initialised_for(make_app: MakeApp) -> None:
    ext = FlaskRedisSingle(make_app(REDIS={"HOST": "h"}))
    other = make_app()
    with other.app_context(), pytest.raises(NotInitializedError, match="Did you forget to call init_app"):
        ext.getRedis()


def test_use_outside_an_app_context(make_app: MakeApp) -> None:
    """Bound to one app, the extension serves it outside an app context too (scripts, shells), as flask-redis
    and Flask-And-Redis do; bound to several, it cannot guess, and says which."""
    one = make_app(REDIS={"HOST": "h", "DATABASE": 3})
    ext = FlaskRedisSingle(one)
    assert ext.getRedis().database == 3
    assert ext.context_app() is one
    two = make_app(REDIS={"HOST": "h"})
    ext.init_app(two)
    with pytest.raises(NotInitializedError, match=r"bound to several apps \('test_app', 'test_app'\)"):
        ext.getRedis()
    with pytest.raises(NotInitializedError, match="outside of an application context"):
        FlaskRedisSingle().getRedis()


def test_redis_commands_on_the_extension(make_app: MakeApp, redis_url: str) -> None:
    """``ext.get("k")``, ``ext.pipeline()``: the commands of the current app's session (flask-redis's idiom)."""
    first, second = make_app(REDIS={"URL": redis_url, "DATABASE": 1}), make_app(REDIS={"URL": redis_url})
    ext = FlaskRedisSingle(first)
    ext.set("where", "first")  # outside an app context: the one app bound
    assert ext.get("where") == b"first"
    ext.init_app(second)
    with second.app_context():
        assert ext.get("where") is None  # database 0: the second app's
        with ext.pipeline() as pipe:
            pipe.set("where", "second")
            pipe.incr("count")
            assert pipe.execute() == [True, 1]
    with first.app_context():
        assert ext.get("where") == b"first"
        assert ext.exists("count") == 0
        with pytest.raises(AttributeError, match="'getredis', and it is no Redis command"):
            ext.getredis  # type: ignore[attr-defined]  # noqa: B018 - a typo: an error for mypy, and when run
    assert copy.copy(ext).config_element == "REDIS"  # private names are never forwarded


def test_unknown_database_names_the_known_ones() -> None:
    ext = FlaskRedisMulti({"DATABASES": {"General": 0, "Jobs": 1}})
    with pytest.raises(UnknownDatabaseError) as caught:
        ext.getRedis("Cache")
    assert str(caught.value) == "database 'Cache' is not configured; known databases: 'General', 'Jobs'"
    assert isinstance(caught.value, LookupError)
    with pytest.raises(UnknownDatabaseError, match="'General', 'Jobs'"):
        ext.getRedis(7)
    with pytest.raises(UnknownDatabaseError, match="ambiguous"):
        ext.getRedis()


def test_index_shared_by_two_servers_is_ambiguous() -> None:
    ext = FlaskRedisMulti({"DATABASES": {"Here": 0, "There": {"HOST": "other", "DATABASE": 0}}})
    with pytest.raises(UnknownDatabaseError, match="ambiguous: Here, There"):
        ext.getRedis(0)
    assert ext.getRedis("There").connection_pool.connection_kwargs["host"] == "other"


def test_single_by_name_and_by_index() -> None:
    ext = FlaskRedisSingle({"DATABASE": 6, "NAME": "Main"})
    assert ext.getRedis() is ext.getRedis("Main") is ext.getRedis(6)
    default = FlaskRedisSingle({"DATABASE": 0})
    assert default.getRedis("default") is default.getRedis()


def test_init_app_does_no_network_io(make_app: MakeApp) -> None:
    app = make_app(REDIS={"HOST": "127.0.0.1", "PORT": closed_port(), "SOCKET_CONNECT_TIMEOUT": 0.2})
    ext = FlaskRedisSingle(app)
    with app.app_context():
        session = ext.getRedis()
        session.connection_pool.connection_kwargs["retry"] = redis.retry.Retry(redis.backoff.NoBackoff(), 0)
        with pytest.raises(redis.ConnectionError):
            session.ping()


def test_one_pool_per_server_and_database() -> None:
    ext = FlaskRedisMulti({"DATABASES": {"A": 0, "B": 0, "C": 1, "D": {"HOST": "elsewhere", "DATABASE": 0}}})
    pool = ext.getRedis("A").connection_pool
    assert ext.getRedis("B").connection_pool is pool
    assert ext.getRedis("C").connection_pool is not pool
    assert ext.getRedis("D").connection_pool is not pool
    assert ext.getRedis("B").name == "B"


def test_max_connections_is_honoured(redis_url: str) -> None:
    session = FlaskRedisSingle({"URL": redis_url, "MAX_CONNECTIONS": 2}).getRedis()
    pool = session.connection_pool
    held = [pool.get_connection(), pool.get_connection()]
    try:
        with pytest.raises(redis.ConnectionError, match="Too many connections"):
            pool.get_connection()
    finally:
        for connection in held:
            pool.release(connection)
    assert session.ping()


def test_kwargs_reach_the_live_client(redis_url: str) -> None:
    session = FlaskRedisSingle({"URL": redis_url}, decode_responses=True, client_name="kwargs-test").getRedis()
    session.set("text", "value")
    assert session.get("text") == "value"
    assert session.client_getname() == "kwargs-test"


def test_dict_configured_extension_works_inside_any_app_context(make_app: MakeApp, redis_url: str) -> None:
    cache = FlaskRedisSingle({"URL": redis_url, "DATABASE": 2})
    with make_app().app_context():
        cache.getRedis().set("k", "v")
        assert cache.getRedis().get("k") == b"v"


def test_single_connection_client_keeps_name_and_prefix(redis_url: str) -> None:
    session = FlaskRedisSingle({"URL": redis_url, "PREFIX": "env", "NAME": "Main"}).getRedis()
    with session.client() as pinned:
        assert isinstance(pinned, RedisSession)
        assert (pinned.name, pinned.prefix) == ("Main", "env")
        with session.subscribe("chan") as pubsub:
            assert pinned.publish("chan", "via-client") == 1
            assert session.wait_for_reply(pubsub, timeout=5) == "via-client"


def test_inside_another_app_the_sole_app_is_not_used(make_app: MakeApp) -> None:
    one, other = make_app(REDIS={"HOST": "h"}), make_app(REDIS={"HOST": "h"})
    ext = FlaskRedisSingle(one)
    with other.app_context():
        with pytest.raises(NotInitializedError, match="Did you forget to call init_app"):
            ext.context_app()
        with pytest.raises(NotInitializedError):
            ext.getRedis()


def test_attribute_checks_on_the_extension_without_a_session() -> None:
    ext = FlaskRedisSingle()  # neither an app nor a config: no session anywhere
    assert not hasattr(ext, "no_such_thing")  # not a command: simply no such attribute
    with pytest.raises(NotInitializedError):
        ext.get("k")  # a command: the error says why it cannot run
