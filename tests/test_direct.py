"""Connections spoken to directly (direct.py) give what a redis-py client gives for the same reply or failure:
the same exception class and message for every error reply, and redis-py's errors when the connection fails."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis

from flask_multi_redis.connection import describe, error_code
from flask_multi_redis.direct import DirectConnection, SubscriberConnection

from .servers import RedisServer
from .waiting import wait_until

# Error replies of every kind redis-py tells apart (its parser's table), and some it does not.
ERROR_REPLIES = [
    "ERR max number of clients reached",
    "ERR invalid password",
    "ERR wrong number of arguments for 'auth' command",
    "ERR unknown command 'FOO', with args beginning with: 'secret'",
    "OOM command not allowed when used memory > 'maxmemory'.",
    "WRONGPASS invalid username-password pair or user is disabled.",
    "NOAUTH Authentication required.",
    "NOPERM this user has no permissions to run the 'set' command",
    "LOADING Redis is loading the dataset in memory",
    "READONLY You can't write against a read only replica.",
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "EXECABORT Transaction discarded because of previous errors.",
    "NOSCRIPT No matching script. Please use EVAL.",
    "MOVED 3999 127.0.0.1:6381",
    "ASK 3999 127.0.0.1:6381",
    "TRYAGAIN Multiple keys request during rehashing of slot",
    "CLUSTERDOWN The cluster is down",
    "CROSSSLOT Keys in request don't hash to the same slot",
    "WRONGTYPE Operation against a key holding the wrong kind of value",
    "BUSYGROUP Consumer Group name already exists",
    "SOMETHINGNEW a code no table knows",
]

SCRIPT = "return redis.error_reply(ARGV[1])"


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def client(request: pytest.FixtureRequest, redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, protocol=request.param, socket_timeout=5)


@pytest.fixture
def connection(client: redis.Redis) -> Iterator[DirectConnection]:
    connection = DirectConnection(client)
    yield connection
    connection.close()


def redis_py_error(client: redis.Redis, reply: str) -> redis.RedisError:
    try:
        client.eval(SCRIPT, 0, reply)
    except redis.RedisError as exc:
        return exc
    raise AssertionError("redis-py raised nothing")


@pytest.mark.parametrize("reply", ERROR_REPLIES)
def test_an_error_reply_is_what_redis_py_raises(client: redis.Redis, connection: DirectConnection, reply: str) -> None:
    expected = redis_py_error(client, reply)
    (got,) = connection.round_trip([("EVAL", SCRIPT, 0, reply)])
    assert type(got) is type(expected)
    assert str(got) == str(expected)
    assert getattr(got, "status_code", None) == getattr(expected, "status_code", None)


def test_error_codes_and_descriptions_never_quote_the_reply(connection: DirectConnection) -> None:
    replies = connection.round_trip([("EVAL", SCRIPT, 0, reply) for reply in ERROR_REPLIES[:4]])
    assert [error_code(error) for error in replies] == ["ERR"] * 4
    assert isinstance(replies[0], redis.ConnectionError)  # max number of clients reached
    assert describe(replies[0]) == "MaxClientsReachedError ERR"  # redis-py's own class for it, from 8.2
    assert "secret" not in describe(replies[3])
    (wrongtype,) = connection.round_trip([("EVAL", SCRIPT, 0, "WRONGTYPE Operation against a key")])
    assert describe(wrongtype) == "ResponseError WRONGTYPE"
    assert error_code(redis.ConnectionError("Connection closed by server.")) is None


def test_replies_after_an_error_reply_come_in_order(connection: DirectConnection) -> None:
    replies = connection.round_trip([("SET", "k", "v"), ("EVAL", SCRIPT, 0, "WRONGTYPE no"), ("GET", "k")])
    assert replies[0] in (b"OK", True)
    assert isinstance(replies[1], redis.ResponseError)
    assert replies[2] == b"v"


def test_an_error_reply_that_redis_py_treats_as_a_lost_connection_ends_it(connection: DirectConnection) -> None:
    """redis-py disconnects on a ConnectionError reply (LOADING, WRONGPASS, max clients): so does this."""
    (first,) = connection.round_trip([("CLIENT", "ID")])
    (loading,) = connection.round_trip([("EVAL", SCRIPT, 0, "LOADING Redis is loading")])
    assert isinstance(loading, redis.BusyLoadingError)
    (second,) = connection.round_trip([("CLIENT", "ID")])
    assert second != first  # a new connection
    (third,) = connection.round_trip([("CLIENT", "ID")])
    assert third == second  # and it stays


def kill_when_blocked(server_admin: redis.Redis, command: str) -> threading.Thread:
    """Kill every connection blocked in ``command``, once there is one."""

    def blocked() -> list[dict[str, str]]:
        return [c for c in server_admin.client_list() if c.get("cmd") == command]

    def kill() -> None:
        wait_until(lambda: blocked())
        for entry in blocked():
            server_admin.client_kill_filter(_id=entry["id"])

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


def test_a_connection_closed_by_the_server_raises_as_in_redis_py(
    client: redis.Redis, connection: DirectConnection, redis_server: RedisServer
) -> None:
    admin = redis_server.admin()
    killer = kill_when_blocked(admin, "blpop")
    with pytest.raises(redis.ConnectionError) as from_redis_py:
        client.blpop(["never"], timeout=5)
    killer.join(10)
    killer = kill_when_blocked(admin, "blpop")
    with pytest.raises(redis.ConnectionError) as ours:
        connection.round_trip([("BLPOP", "never", 5)])
    killer.join(10)
    assert type(ours.value) is type(from_redis_py.value)
    assert str(ours.value) == str(from_redis_py.value) == "Connection closed by server."
    assert not connection.connected
    assert connection.round_trip([("PING",)])[0] in (b"PONG", True)  # reconnects on its next use


def test_a_read_timeout_raises_as_in_redis_py(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=0.2)
    with pytest.raises(redis.TimeoutError) as from_redis_py:
        client.blpop(["never"], timeout=2)
    connection = DirectConnection(client)
    with pytest.raises(redis.TimeoutError) as ours:
        connection.round_trip([("BLPOP", "never", 2)])
    assert str(ours.value) == str(from_redis_py.value)
    assert not connection.connected  # a late reply would be out of step: closed, as redis-py does
    assert connection.round_trip([("PING",)])[0] in (b"PONG", True)
    connection.close()


def test_an_unreachable_server_raises_redis_pys_connection_error(redis_url: str) -> None:
    from .test_extension import closed_port

    port = closed_port()
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    with pytest.raises(redis.ConnectionError) as from_redis_py:
        client.ping()
    with pytest.raises(redis.ConnectionError) as ours:
        DirectConnection(client).round_trip([("PING",)])
    assert str(ours.value) == str(from_redis_py.value)  # redis-py made the connection, and raised


def test_a_split_round_trip_reads_the_rest_later(connection: DirectConnection) -> None:
    replies = connection.start([("SET", "k", "1"), ("INCR", "k"), ("BLPOP", "nothing", 0.1)], answered=2)
    assert replies[1] == 2
    assert connection.owed == 1
    assert connection.finish() is None  # the BLPOP timed out on the server: nil
    assert connection.owed == 0
    with pytest.raises(redis.ConnectionError, match="no reply is owed"):
        connection.finish()


def test_a_use_after_an_unfinished_one_starts_on_a_connection_in_step(connection: DirectConnection) -> None:
    (first,) = connection.round_trip([("CLIENT", "ID")])
    connection.start([("BLPOP", "nothing", 0.2)], answered=0)  # left owed, as an interrupted caller leaves it
    (reply,) = connection.round_trip([("ECHO", "mine")])
    assert reply == b"mine"  # not the BLPOP's nil
    assert connection.round_trip([("CLIENT", "ID")])[0] != first


def test_a_subscriber_gets_messages_and_waits_without_losing_its_place(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    subscriber = SubscriberConnection(client)
    subscriber.send([("SUBSCRIBE", "news")])
    confirmation = subscriber.next_message(5)
    assert list(confirmation)[:2] == [b"subscribe", b"news"]
    assert subscriber.next_message(0.05) is None  # nothing yet: still connected
    assert subscriber.connected
    client.publish("news", "hello")
    assert list(subscriber.next_message(5)) == [b"message", b"news", b"hello"]
    subscriber.close()


def test_a_write_larger_than_the_socket_takes_at_once_goes_out_whole(connection: DirectConnection) -> None:
    """One ``send`` takes what the socket's buffer holds; the rest follows."""
    value = bytes(range(256)) * (64 << 10)  # 16 MiB: far more than a loopback socket takes in one send
    assert connection.round_trip([("SET", "big", value), ("STRLEN", "big")]) == [b"OK", len(value)]
    assert connection.round_trip([("GET", "big")]) == [value]
