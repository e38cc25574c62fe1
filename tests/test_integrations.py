"""The libraries a Flask shop configures Redis for a second time, configured from this extension instead (the
README's recipes, against the tests' own redis-server): Flask-Session, Flask-Caching, Flask-Limiter and RQ, each
on a database of its own, under the app's PREFIX where the library takes a key prefix."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from flask import Flask, session

from flask_multi_redis import FlaskRedisMulti, FlaskRedisSingle, RedisSession

from .servers import RedisServer


@pytest.fixture
def app(redis_url: str) -> Flask:
    app = Flask("shop")
    app.config["REDIS"] = {
        "URL": redis_url,
        "PREFIX": "shop",
        "DATABASES": {"General": 0, "Sessions": 1, "Cache": 2, "Limits": 3, "Jobs": 4},
    }
    app.config["SECRET_KEY"] = "a test secret, not a real one"
    FlaskRedisMulti(app)
    return app


def ext(app: Flask) -> FlaskRedisMulti:
    found: FlaskRedisMulti = app.extensions["redis"]
    return found


def test_flask_session_on_a_configured_database(app: Flask) -> None:
    from flask_session import Session

    sessions = ext(app).getRedis("Sessions", app=app)
    app.config.update(SESSION_TYPE="redis", SESSION_REDIS=sessions, SESSION_KEY_PREFIX=f"{sessions.prefix}:session:")
    Session(app)

    @app.post("/basket")
    def put() -> str:
        session["items"] = ["tea"]
        return "ok"

    @app.get("/basket")
    def get() -> str:
        return ",".join(session.get("items", []))

    client = app.test_client()
    assert client.post("/basket").text == "ok"
    assert client.get("/basket").text == "tea"
    assert [key.startswith(b"shop:session:") for key in sessions.scan_iter()] == [True]
    assert ext(app).getRedis("General", app=app).dbsize() == 0  # not in the general database


def test_flask_caching_on_a_configured_database(app: Flask) -> None:
    from flask_caching import Cache

    caches = ext(app).getRedis("Cache", app=app)
    cache = Cache(
        app,
        config={"CACHE_TYPE": "RedisCache", "CACHE_REDIS_HOST": caches, "CACHE_KEY_PREFIX": f"{caches.prefix}:cache:"},
    )
    with app.app_context():
        cache.set("greeting", {"text": "hello"}, timeout=60)
        assert cache.get("greeting") == {"text": "hello"}
    assert caches.keys() == [b"shop:cache:greeting"]


def test_flask_limiter_on_a_configured_database(app: Flask) -> None:
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    limits = ext(app).getRedis("Limits", app=app)
    Limiter(
        get_remote_address,
        app=app,
        storage_uri=ext(app).url("Limits", app=app),
        key_prefix=limits.prefix,
        default_limits=["2 per minute"],
    )

    @app.get("/search")
    def search() -> str:
        return "results"

    client = app.test_client()
    assert [client.get("/search").status_code for _ in range(3)] == [200, 200, 429]
    assert limits.keys() != []


def add(a: int, b: int) -> int:
    return a + b


def test_rq_on_a_configured_database(app: Flask) -> None:
    from rq import Queue, SimpleWorker
    from rq.serializers import JSONSerializer

    jobs: RedisSession = ext(app).getRedis("Jobs", app=app)
    queue = Queue("default", connection=jobs, serializer=JSONSerializer)  # JSON, not RQ's default pickle
    job = queue.enqueue(add, 2, 3)
    SimpleWorker([queue], connection=jobs, serializer=JSONSerializer).work(burst=True)
    job.refresh()  # type: ignore[no-untyped-call]
    assert job.return_value() == 5
    assert jobs.exists(f"rq:job:{job.id}")


def test_the_url_of_a_database_has_its_credentials(redis_url: str) -> None:
    config = {"URL": redis_url, "USERNAME": "user", "PASSWORD": "p@ss w/rd", "DATABASES": {"A": 0, "B": 5}}
    ext = FlaskRedisMulti(config)
    assert ext.url("B").endswith("/5")
    assert ext.url("B").startswith("redis://user:p%40ss%20w%2Frd@")
    assert "p@ss" not in str(ext.addresses())


def test_the_url_connects_to_a_password_protected_server(password_server: RedisServer) -> None:
    ext = FlaskRedisSingle({"URL": password_server.url, "PASSWORD": password_server.password})
    with redis.Redis.from_url(ext.url()) as client:  # as a library given only the URL would connect
        assert client.ping()


def test_the_url_carries_tls_settings(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here")
    ext = FlaskRedisSingle({"URL": "rediss://cache.internal:6380/2", "SSL_CA_CERTS": str(ca), "PASSWORD": "s3cret"})
    url = ext.url()
    assert url.startswith("rediss://:s3cret@cache.internal:6380/2?ssl_ca_certs=")
    kwargs = redis.Redis.from_url(url).connection_pool.connection_kwargs
    assert (kwargs["ssl_ca_certs"], kwargs["password"], kwargs["db"]) == (str(ca), "s3cret", 2)
