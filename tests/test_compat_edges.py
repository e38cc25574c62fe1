"""The migration layers and the configuration at their edges, against a real Redis: the keys Flask-And-Redis
reads and ignores, an empty URL, SSL, a username beside a URL, errors that name keys as written, a setting given
twice, values in a URL checked as the keys are, a session's own commands on the extension outside a context, and
flask-redis's URL over its keyword arguments.

Flask-And-Redis reads, under its config prefix, only the keys that are ``redis.Redis`` keyword arguments (plus
URL and CLASS), ignores an empty ``REDIS_URL`` and lets the URL override HOST, PORT, DB and PASSWORD (it writes the
URL's user to ``REDIS_USER``, so ``REDIS_USERNAME`` stays). flask-redis makes its client with redis-py's
``from_url(url, **kwargs)``, where the URL's parts win over the keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
import redis
from flask import Flask

from flask_multi_redis import ConfigurationError, FlaskRedisSingle, NotInitializedError
from flask_multi_redis.compat.flask_and_redis import Redis
from flask_multi_redis.compat.flask_redis import FlaskRedis

from .servers import RedisServer, TLSFiles

MakeApp = Callable[..., Flask]


@pytest.fixture
def opened() -> Iterator[list[Any]]:
    """Clients (or extensions forwarding to one) a test made: their connections are closed afterwards."""
    made: list[Any] = []
    yield made
    for client in made:
        client.connection_pool.disconnect()


def read(redis_url: str, db: int, key: str) -> bytes | None:
    """``key`` in database ``db``, read with a plain client of its own."""
    client = redis.Redis.from_url(f"{redis_url}/{db}")
    try:
        return client.get(key)  # type: ignore[return-value]
    finally:
        client.close()


def database_of(store: Redis) -> int:
    assert store.connection is not None
    return int(store.connection.connection_pool.connection_kwargs["db"])


# --- Flask-And-Redis ----------------------------------------------------------------------------------------


def test_flask_and_redis_leaves_other_keys_under_its_prefix_alone(
    make_app: MakeApp, redis_url: str, opened: list[Any]
) -> None:
    # Two config prefixes where one starts with the other, plus an app setting of its own under REDIS_:
    # Flask-And-Redis reads only the redis.Redis arguments of each prefix, so both connect.
    app = make_app(REDIS_URL=f"{redis_url}/1", REDIS_CACHE_URL=f"{redis_url}/2", REDIS_KEY_TTL=300)
    store = Redis(app)
    cache = Redis(app, "REDIS_CACHE")
    opened += [store, cache]
    store.set("where", "one")
    cache.set("where", "two")
    assert (store.get("where"), cache.get("where")) == (b"one", b"two")


def test_flask_and_redis_empty_url_means_no_url(
    make_app: MakeApp, redis_server: RedisServer, redis_url: str, opened: list[Any]
) -> None:
    # REDIS_URL = os.environ.get("REDIS_URL", ""): Flask-And-Redis skips a falsy URL and uses the keys.
    app = make_app(REDIS_URL="", REDIS_HOST=redis_server.host, REDIS_PORT=redis_server.port, REDIS_DB=3)
    store = Redis(app)
    opened.append(store)
    store.set("k", "v")
    assert database_of(store) == 3
    assert read(redis_url, 3, "k") == b"v"


def test_flask_and_redis_ssl_keyword(
    make_app: MakeApp, tls_server: RedisServer, tls_files: TLSFiles, opened: list[Any]
) -> None:
    # "understands all keyword arguments which should be passed to redis.Redis": ssl=True is one of them.
    app = make_app(
        REDIS_HOST=tls_server.host, REDIS_PORT=tls_server.port, REDIS_SSL=True, REDIS_SSL_CA_CERTS=str(tls_files.ca)
    )
    store = Redis(app)
    opened.append(store)
    assert store.ping()


def test_flask_and_redis_username_beside_a_url_without_one(
    make_app: MakeApp, acl_server: RedisServer, opened: list[Any]
) -> None:
    # A URL with only a password (redis://:password@host) and the ACL user in REDIS_USERNAME: the URL does not
    # carry a user, so it cannot win over REDIS_USERNAME (Flask-And-Redis keeps it: it writes the URL's user to
    # REDIS_USER). Dropping it logs in as the default user with alice's password.
    assert acl_server.user is not None
    password = quote(acl_server.user.password, safe="")
    app = make_app(REDIS_URL=f"redis://:{password}@{acl_server.host}:{acl_server.port}/0", REDIS_USERNAME="alice")
    store = Redis(app)
    opened.append(store)
    assert store.acl_whoami() in ("alice", b"alice")


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"REDIS_DB": -1}, "REDIS_DB"),
        ({"REDIS_SOCKET_TIMEOUT": -1}, "REDIS_SOCKET_TIMEOUT"),
        ({"REDIS_PORT": "abc"}, "REDIS_PORT"),
    ],
)
def test_flask_and_redis_errors_name_the_key_as_written(
    make_app: MakeApp, redis_server: RedisServer, config: dict[str, object], key: str
) -> None:
    # README: ConfigurationError "names the key as you wrote it"; the native flat keys do (REDIS_DB).
    app = make_app(REDIS_HOST=redis_server.host, **{"REDIS_PORT": redis_server.port, **config})
    with pytest.raises(ConfigurationError) as caught:
        Redis(app)
    assert caught.value.key == key, str(caught.value)


def test_flask_redis_errors_name_the_key_as_written(make_app: MakeApp, redis_server: RedisServer) -> None:
    # flask-redis reads only REDIS_URL (or <config_prefix>_URL): that is the key the user wrote.
    app = make_app(OTHER_URL=f"redis://{redis_server.host}:{redis_server.port}/first")
    with pytest.raises(ConfigurationError) as caught:
        FlaskRedis(app, config_prefix="OTHER")
    assert caught.value.key == "OTHER_URL", str(caught.value)


# --- flat keys and URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [{"REDIS_DB": 1, "REDIS_DATABASE": 2}, {"REDIS_CHARSET": "latin-1", "REDIS_ENCODING": "utf-8"}],
)
def test_flat_setting_given_under_both_names_is_an_error(
    make_app: MakeApp, redis_url: str, config: dict[str, object]
) -> None:
    # "a value may be given once": REDIS_DB and REDIS_DATABASE both set DATABASE (REDIS_CHARSET and
    # REDIS_ENCODING both set encoding); one silently wins, by the order of the keys in app.config.
    app = make_app(REDIS_URL=redis_url, **config)
    with pytest.raises(ConfigurationError):
        FlaskRedisSingle(app)


def test_flask_and_redis_db_is_not_overridden_by_a_database_key(
    make_app: MakeApp, redis_server: RedisServer, redis_url: str, opened: list[Any]
) -> None:
    # Flask-And-Redis reads REDIS_DB (redis.Redis's db); REDIS_DATABASE is no argument of redis.Redis, and taking it
    # would move the app's data to another database.
    app = make_app(REDIS_HOST=redis_server.host, REDIS_PORT=redis_server.port, REDIS_DB=1, REDIS_DATABASE=2)
    store = Redis(app)
    opened.append(store)
    store.set("k", "v")
    assert read(redis_url, 1, "k") == b"v"


@pytest.mark.parametrize(
    "tail",
    [
        "/0?socket_timeout=-1",
        "/0?socket_connect_timeout=0",
        "/0?health_check_interval=-5",
        "/0?max_connections=0",
        "?db=-1",
    ],
)
def test_url_values_are_checked_as_the_keys_are(redis_url: str, tail: str) -> None:
    # SOCKET_TIMEOUT: -1, MAX_CONNECTIONS: 0, DATABASE: -1 ... are ConfigurationErrors; in the URL they pass.
    with pytest.raises(ConfigurationError) as caught:
        FlaskRedisSingle(redis_url + tail)
    assert caught.value.key == "REDIS.URL"


def test_url_port_zero_is_refused(redis_server: RedisServer) -> None:
    # PORT: 0 is refused ("an integer from 1 to 65535"); redis://host:0 is accepted and fails at first use.
    with pytest.raises(ConfigurationError):
        FlaskRedisSingle(f"redis://{redis_server.host}:0/0")


# --- commands on the extension ----------------------------------------------------------------------------


def test_session_commands_on_the_extension_say_why_they_cannot_run(
    make_app: MakeApp, redis_url: str, opened: list[Any]
) -> None:
    # ext.ping() outside an app context, bound to two apps, raises NotInitializedError naming them (row 10);
    # ext.subscribe(...) and ext.wait_for_reply(...), the session's own commands, claim not to exist instead.
    one, two, other = make_app(REDIS_URL=redis_url), make_app(REDIS_URL=f"{redis_url}/1"), make_app()
    ext = FlaskRedisSingle(one)
    ext.init_app(two)
    opened += [ext.getRedis(app=one), ext.getRedis(app=two)]
    with pytest.raises(NotInitializedError, match="bound to several apps"):
        ext.ping()
    with pytest.raises(NotInitializedError, match="bound to several apps"):
        ext.subscribe("q")  # type: ignore[attr-defined]
    with other.app_context(), pytest.raises(NotInitializedError, match="forget to call init_app"):
        ext.wait_for_reply  # type: ignore[attr-defined]  # noqa: B018 - the attribute lookup is what is tested


# --- flask-redis ----------------------------------------------------------------------------------------------


def test_flask_redis_url_wins_over_keyword_arguments(make_app: MakeApp, redis_url: str, opened: list[Any]) -> None:
    # flask-redis: provider.from_url(url, **kwargs), where the URL's parts win. from_custom_provider does so here
    # too; the default path lets the keyword win, and the app's data lands in another database.
    app = make_app(REDIS_URL=f"{redis_url}/2")
    provided = FlaskRedis.from_custom_provider(redis.Redis, app, db=5)
    ours = FlaskRedis(app, db=5)
    opened += [provided, ours]
    assert provided.connection_pool.connection_kwargs["db"] == 2
    ours.set("k", "v")
    assert read(redis_url, 2, "k") == b"v"
