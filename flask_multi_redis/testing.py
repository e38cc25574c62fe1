"""A pytest plugin for apps built on flask-multi-redis, loaded by itself once the package is installed (its
``pytest11`` entry point), with helpers that end by their deadlines.

Fixtures:

- ``throwaway_redis`` (session): a real redis-server of the test session's own, on a free loopback port, with
  no persistence; the tests that ask for it are skipped, saying why, when ``redis-server`` is not installed.
- ``redis_url``: its URL, emptied for each test.
- ``redis_app``: ``redis_app(**REDIS)`` makes a Flask app configured on it (``PREFIX`` ``test`` unless given;
  ``FlaskRedisMulti`` when ``DATABASES`` is given); its broker starts in this process when the app has routes,
  and every broker is stopped after the test.

Helpers: :func:`call` requests a channel and returns the reply; :func:`expect_broadcast` collects the
broadcasts sent on a channel while its block runs.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from flask import Flask

from .broker import Channel
from .broker.commands import SHARDED
from .broker.envelope import unpack
from .broker.names import command_channel
from .broker.signing import Signer
from .extension import FlaskRedisMulti, FlaskRedisSingle, RedisExtension

__all__ = ["ThrowawayRedis", "call", "expect_broadcast"]

Rep = TypeVar("Rep")

#: How many free ports a throwaway server tries before it gives up (each one found taken by another process).
PORT_TRIES = 5

MISSING = "redis-server is not installed (apt-get install redis-server, brew install redis): no throwaway Redis"


class ThrowawayRedis:
    """A redis-server process on a free loopback port, with no persistence, in ``folder``."""

    def __init__(self, folder: Path, executable: str = "redis-server") -> None:
        self.folder = folder
        self.executable = executable
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> ThrowawayRedis:
        """Start it and wait, up to ``timeout`` seconds, until it answers PING. A port another process took
        meanwhile (the free port was closed before redis-server bound it) is given up for another: the server
        that answers must be this one's own process, never another's that it would then empty.

        :raises TimeoutError: it did not answer in time (the process is stopped).
        """
        deadline = time.monotonic() + timeout
        for _ in range(PORT_TRIES):
            if self._started_on_port(deadline):
                return self
            self.port = _free_port()
        raise TimeoutError(f"redis-server found its port taken {PORT_TRIES} times in a row")

    def _started_on_port(self, deadline: float) -> bool:
        """Whether redis-server, started on ``self.port``, answers as this process; False when another process
        has the port.

        :raises TimeoutError: it did not answer by ``deadline`` (the process is stopped).
        """
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        log = (self.folder / "redis.log").open("wb")
        with log:
            self.process = subprocess.Popen(  # noqa: S603 - redis-server, with options of ours
                [self.executable, *options, "--dir", str(self.folder)], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            with redis.Redis(port=self.port, socket_timeout=1) as client:
                while time.monotonic() < deadline:
                    try:
                        if int(client.info("server")["process_id"]) == self.process.pid:
                            return True
                        self.stop()  # another process answers there: its port, not ours
                        return False
                    except redis.RedisError:
                        if self.process.poll() is not None:  # could not bind: the port is taken
                            return False
                        time.sleep(0.02)  # polls: the server is starting
        except BaseException:
            self.stop()
            raise
        self.stop()
        raise TimeoutError(f"redis-server on port {self.port} did not answer in time (see {log.name})")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def throwaway_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayRedis]:
    """A redis-server of this test session's own (never a server of the machine's)."""
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip(MISSING)
    server = ThrowawayRedis(tmp_path_factory.mktemp("flask-multi-redis"), executable).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(throwaway_redis: ThrowawayRedis) -> str:
    """The throwaway server's URL, emptied for this test."""
    with redis.Redis.from_url(throwaway_redis.url) as client:
        client.flushall()
    return throwaway_redis.url


@pytest.fixture
def redis_app(redis_url: str) -> Iterator[Callable[..., Flask]]:
    """``redis_app(**REDIS)``: a Flask app whose ``REDIS`` config is ``URL`` (the throwaway server), ``PREFIX``
    ``test`` and what is given; the extension is ``app.extensions["redis"]``."""
    made: list[Flask] = []

    def make(name: str = "test-app", **config: Any) -> Flask:
        app = Flask(name)
        app.config["REDIS"] = {"URL": redis_url, "PREFIX": "test", **config}
        FlaskRedisMulti(app) if "DATABASES" in config else FlaskRedisSingle(app)
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            _extension(app).broker.stop()


def _extension(app: Flask) -> RedisExtension:
    found = app.extensions.get("redis")
    if not isinstance(found, RedisExtension):
        raise LookupError(f"app {app.name!r} has no flask-multi-redis extension under app.extensions['redis']")
    return found


def call(app: Flask, channel: Channel[Any, Rep], message: Any, timeout: float = 5.0) -> Rep:
    """``channel``'s reply to ``message``, through ``app``'s broker, once this process's broker is ready (it
    starts by itself); everything within ``timeout`` seconds.

    :raises TimeoutError: the broker was not ready, or no reply came, in time (``RequestTimeout`` is one).
    """
    deadline = time.monotonic() + timeout
    with app.app_context():
        broker = _extension(app).broker
        broker.start()  # a caller-only app (no routes) has not, yet
        if not broker.wait_ready(timeout):
            raise TimeoutError(f"the broker of app {app.name!r} was not ready within {timeout} s")
        return broker.request(channel, message, timeout=max(0.001, deadline - time.monotonic()))


@contextmanager
def expect_broadcast(app: Flask, channel: Channel[Any, Any], timeout: float = 5.0) -> Iterator[list[Any]]:
    """Collect the broadcasts (commands) sent on ``channel`` in ``app``'s environment while the block runs, as
    the channel's request type; after the block, wait up to ``timeout`` seconds for the first. It listens where
    the broker publishes: on the broker's database, and on a Redis Cluster on the shard of its hash tag, with
    sharded pub/sub.

    :raises TimeoutError: none came in time.
    """
    extension = _extension(app)
    broker = extension.broker
    with app.app_context():
        session, verbs = broker.wire_session(app)
        keys = extension.signing_keys(session.name, app=app)
    signer = Signer(keys, session.prefix) if keys else None
    max_size = broker.max_message_size
    seen: list[Any] = []
    pubsub = session.pubsub(ignore_subscribe_messages=True)
    try:
        subscribe = pubsub.ssubscribe if verbs is SHARDED else pubsub.subscribe
        subscribe(command_channel(session.prefix, channel.name))
        pubsub.get_message(timeout=timeout)  # the subscription's confirmation: nothing is missed after it
        yield seen
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic() if not seen else 0.0
            message = pubsub.get_message(timeout=max(0.0, left))
            if message is not None:
                seen.append(channel.load_request(unpack(message["data"], max_size, signer).body))
            elif seen:
                return
            elif left <= 0:
                raise TimeoutError(f"no broadcast on {channel.name!r} within {timeout} s")
    finally:
        pubsub.close()
