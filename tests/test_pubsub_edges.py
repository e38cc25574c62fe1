"""The typed pub/sub API at its edges: payloads that are not text in a text session's encoding, messages that
arrive while a cluster's shards confirm a subscription, NaN in what orjson writes as null, and the pytest plugin's
throwaway server on a port another process took."""

from __future__ import annotations

import math
import secrets
import shutil
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from pydantic import BaseModel

from flask_multi_redis import DecodeError, EncodeError, FlaskRedisSingle, RedisSession
from flask_multi_redis.codec import decode, encode
from flask_multi_redis.testing import ThrowawayRedis

from .proxy import Proxy, proxy_to
from .servers import RedisServer
from .sessions import WAIT
from .topologies import Cluster
from .waiting import wait_until

# --- decode_responses=True sessions and hostile payloads ---------------------------------------------------------


def test_a_non_utf8_message_on_a_text_session_raises_decode_error(text_session: RedisSession, raw: redis.Redis) -> None:
    """wait_for_reply raises DecodeError, or returns None with allow_error=True, for a payload that is not UTF-8
    on a decode_responses=True session too (redis-py's parser raises UnicodeDecodeError inside get_message)."""
    with text_session.subscribe("in") as pubsub:
        assert raw.publish("test:in", b"\xff\xfe hostile") == 1
        assert raw.publish("test:in", b"\xff\xfe hostile") == 1
        with pytest.raises(DecodeError):
            text_session.wait_for_reply(pubsub, str, timeout=WAIT)
        assert text_session.wait_for_reply(pubsub, str, timeout=WAIT, allow_error=True) is None


def test_a_text_message_that_does_not_fit_the_encoding_is_a_decode_error_on_a_text_session(
    text_session: RedisSession, session: RedisSession
) -> None:
    """wait_for_reply(..., encoding=...) raises DecodeError (None with allow_error) for a message that does not
    fit the encoding, on a decode_responses=True session as on a bytes one."""
    with session.subscribe("in") as plain, text_session.subscribe("in") as text:
        assert session.publish("in", "café") == 2
        assert session.wait_for_reply(plain, str, timeout=WAIT, encoding="ascii", allow_error=True) is None
        assert text_session.wait_for_reply(text, str, timeout=WAIT, encoding="ascii", allow_error=True) is None


def test_decode_of_text_that_the_encoding_cannot_carry_is_a_decode_error() -> None:
    """codec.decode raises DecodeError for text that its encoding cannot carry."""
    with pytest.raises(DecodeError):
        decode("café", str, "ascii")


# --- deadlines ---------------------------------------------------------------------------------------------------


@pytest.fixture
def proxy(redis_server: RedisServer) -> Iterator[Proxy]:
    with proxy_to(redis_server.host, redis_server.port) as proxy:
        yield proxy


def _ends_within(work: Callable[[], object], within: float) -> tuple[bool, list[object]]:
    """Run ``work`` in a daemon thread; whether it ended within ``within`` seconds, and what it gave or raised."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(within)
    return not thread.is_alive(), outcome


# --- a Redis Cluster ---------------------------------------------------------------------------------------------


def test_a_cluster_subscribe_to_channels_on_several_shards_drops_no_delivered_message(redis_cluster: Cluster) -> None:
    """ClusterSession.subscribe sends one SSUBSCRIBE per channel, to the shard of each, and reads until every
    confirmation is in: a message on a channel whose shard confirmed it first, published meanwhile, is kept for
    wait_for_reply, not thrown away."""
    ext = FlaskRedisSingle({"URL": redis_cluster.url, "PREFIX": f"c{secrets.token_hex(4)}"})
    session = ext.getCluster()
    publisher = FlaskRedisSingle({"URL": redis_cluster.url, "PREFIX": session.prefix}).getCluster()
    try:
        session.ping()
        publisher.ping()
        stop = threading.Event()
        counted: list[tuple[int, int]] = []  # (sequence number, receivers SPUBLISH counted)

        def publish() -> None:
            sequence = 0
            while not stop.is_set():
                counted.append((sequence, publisher.publish("ch0", str(sequence))))
                sequence += 1

        thread = threading.Thread(target=publish)
        thread.start()
        try:
            wait_until(lambda: len(counted) > 10)
            pubsub = session.subscribe(*(f"ch{index}" for index in range(300)))  # on every shard
        finally:
            stop.set()
            thread.join(WAIT)
        try:
            first = int(session.wait_for_reply(pubsub, str, timeout=WAIT))
            lost = [sequence for sequence, receivers in counted if receivers == 1 and sequence < first]
            assert not lost, f"{len(lost)} messages SPUBLISH delivered to the subscriber were never returned"
        finally:
            pubsub.close()
    finally:
        session.close()
        publisher.close()


# --- the pytest plugin -------------------------------------------------------------------------------------------


def test_throwaway_redis_does_not_take_a_server_it_did_not_start_for_its_own(tmp_path: Path) -> None:
    """The plugin's throwaway server is the test session's own, and redis_url empties it before every test: when
    another process takes its port between the free-port pick and redis-server binding it (another xdist
    worker's throwaway, say), start() moves to another port rather than hand over the other server."""
    throwaway = ThrowawayRedis(tmp_path)
    other = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(throwaway.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with redis.Redis(port=throwaway.port, socket_timeout=1) as client:

            def answers() -> bool:
                """the other server answers"""
                try:
                    return bool(client.ping())
                except redis.RedisError:
                    return False

            wait_until(answers)
            taken = throwaway.port
            started = throwaway.start(timeout=5)
        assert started.port != taken  # it gave that port up for another
        assert started.process is not None
        with redis.Redis(port=started.port, socket_timeout=1) as own:
            assert own.info("server")["process_id"] == started.process.pid
    finally:
        throwaway.stop()
        other.terminate()
        other.wait(10)


# --- encode's refusal of NaN and the infinities --------------------------------------------------------------------


class Readings(BaseModel):
    values: frozenset[float]


class Window(BaseModel):
    values: deque[float]


@dataclass
class Point:
    x: float


@pytest.mark.parametrize(
    "value",
    [Readings(values=frozenset({math.nan})), Window(values=deque([math.inf])), {"at": Point(x=math.nan)}],
    ids=["model-frozenset", "model-deque", "dict-with-dataclass"],
)
def test_encode_refuses_nan_wherever_it_is_written_as_null(value: object) -> None:
    """encode refuses NaN and the infinities wherever orjson or pydantic would write them as null: a model's set
    or deque field, a dataclass inside a dict."""
    with pytest.raises(EncodeError):
        encode(value)
