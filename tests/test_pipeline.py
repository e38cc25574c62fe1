"""The pipelined connection: callers at the same time share one write, an error reaches every caller of the
round trip it stopped, and an interrupted sender leaves the connection in step for the next caller."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

import pytest
import redis

from flask_multi_redis.broker.pipeline import PipelinedConnection

from .servers import RedisServer
from .waiting import wait_until


@pytest.fixture
def pipelined(redis_url: str) -> Iterator[PipelinedConnection]:
    connection = PipelinedConnection(redis.Redis.from_url(redis_url, socket_timeout=10, client_name="pipelined"))
    yield connection
    connection.close(5, for_good=True)


def in_threads(count: int, call: object) -> tuple[list[threading.Thread], list[object]]:
    """Start ``count`` threads that each append what ``call()`` returns, or raises."""
    results: list[object] = []

    def run() -> None:
        try:
            results.append(call())  # type: ignore[operator]
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def blocked(server: RedisServer) -> list[dict[str, str]]:
    return [c for c in server.admin().client_list() if c.get("name") == "pipelined" and c.get("cmd") == "blpop"]


def test_callers_at_the_same_time_share_one_write(pipelined: PipelinedConnection, redis_server: RedisServer) -> None:
    holder, held = in_threads(1, lambda: pipelined.execute("BLPOP", "gate", 5))
    wait_until(lambda: len(blocked(redis_server)) == 1)  # the connection is busy with it
    before = pipelined.round_trips
    threads, results = in_threads(8, lambda: pipelined.execute("INCR", "counter"))
    wait_until(lambda: pipelined.queued == 8)
    redis_server.admin().rpush("gate", "open")
    for thread in [*holder, *threads]:
        thread.join(10)
    assert held == [[b"gate", b"open"]]
    assert sorted(results) == list(range(1, 9))  # type: ignore[type-var]
    assert pipelined.round_trips - before == 1  # all eight in one write, after the BLPOP's


def test_an_error_reaches_every_caller_of_the_round_trip_it_stopped(
    pipelined: PipelinedConnection, redis_server: RedisServer
) -> None:
    holder, _ = in_threads(1, lambda: pipelined.execute("BLPOP", "gate", 5))
    wait_until(lambda: len(blocked(redis_server)) == 1)
    first, failed = in_threads(1, lambda: pipelined.execute("BLPOP", "never", 5))  # these two go out together
    wait_until(lambda: pipelined.queued == 1)
    second, failed_too = in_threads(1, lambda: pipelined.execute("GET", "x"))
    wait_until(lambda: pipelined.queued == 2)
    redis_server.admin().rpush("gate", "open")
    wait_until(lambda: len(blocked(redis_server)) == 1 and pipelined.queued == 0)  # the BLPOP never, with the GET
    redis_server.admin().client_kill_filter(_id=blocked(redis_server)[0]["id"])
    for thread in [*holder, *first, *second]:
        thread.join(10)
    assert [type(result) for result in [*failed, *failed_too]] == [redis.ConnectionError, redis.ConnectionError]
    assert pipelined.execute("ECHO", "after") == b"after"  # a new connection, in step


class Interrupted(BaseException):
    """What a gevent Timeout or a KeyboardInterrupt is to the sender: not an error of the round trip."""


def test_an_interrupted_sender_leaves_the_others_served_and_the_connection_in_step(
    pipelined: PipelinedConnection, redis_server: RedisServer
) -> None:
    def interrupt_once_others_wait(signum: int, frame: FrameType | None) -> None:
        if pipelined.queued == 2:
            raise Interrupted
        signal.setitimer(signal.ITIMER_REAL, 0.02)  # look again soon; the read goes on meanwhile

    later: list[tuple[list[threading.Thread], list[object]]] = []  # two callers, once this thread sends
    starter = threading.Timer(0.05, lambda: later.append(in_threads(2, lambda: pipelined.execute("INCR", "served"))))
    previous = signal.signal(signal.SIGALRM, interrupt_once_others_wait)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.02)
        starter.start()
        started = time.monotonic()
        with pytest.raises(Interrupted):
            pipelined.execute("BLPOP", "never", 5)  # this thread sends, and is interrupted while it reads
        assert time.monotonic() - started < 4
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    starter.join(5)
    ((threads, results),) = later
    for thread in threads:
        thread.join(10)
    assert sorted(results) == [1, 2]  # type: ignore[type-var]  # the two queued behind it were served
    assert pipelined.execute("ECHO", "next") == b"next"  # not the BLPOP's late nil


def test_a_queued_caller_interrupted_has_its_commands_left_unsent(
    pipelined: PipelinedConnection, redis_server: RedisServer
) -> None:
    """A gevent Timeout reaches a caller still queued behind a round trip: its commands must not run later."""
    holder, held = in_threads(1, lambda: pipelined.execute("BLPOP", "gate", 5))
    wait_until(lambda: len(blocked(redis_server)) == 1)

    def interrupt_once_queued(signum: int, frame: FrameType | None) -> None:
        if pipelined.queued == 1:
            raise Interrupted
        signal.setitimer(signal.ITIMER_REAL, 0.02)

    previous = signal.signal(signal.SIGALRM, interrupt_once_queued)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.02)
        with pytest.raises(Interrupted):
            pipelined.execute("INCR", "interrupted")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert pipelined.queued == 0
    redis_server.admin().rpush("gate", "open")
    holder[0].join(10)
    assert held == [[b"gate", b"open"]]
    assert pipelined.execute("ECHO", "after") == b"after"
    assert redis_server.admin().get("interrupted") is None


def test_closing_it_under_a_round_trip_fails_that_round_trip_as_a_lost_connection(
    pipelined: PipelinedConnection, redis_server: RedisServer
) -> None:
    """What stop() does when a round trip outlives its timeout: the callers get a ConnectionError, nothing else."""
    sender, results = in_threads(1, lambda: pipelined.run([("BLPOP", "first", 5), ("BLPOP", "second", 5)]))
    wait_until(lambda: len(blocked(redis_server)) == 1)
    redis_server.admin().rpush("first", "1")  # the first reply is read, the second awaited
    wait_until(
        lambda: [c.get("cmd") for c in blocked(redis_server)] == ["blpop"] and not redis_server.admin().exists("first")
    )
    pipelined.close(timeout=0, for_good=True)
    sender[0].join(10)
    assert [type(result) for result in results] == [redis.ConnectionError]


def test_a_counted_publish_counts_at_the_moment_it_publishes(redis_url: str) -> None:
    """NUMSUB and PUBLISH in one transaction: however large the message, and while another client subscribes and
    unsubscribes all the time, the two counts agree (without MULTI/EXEC, 1 pair in about a thousand did not)."""
    from flask_multi_redis.broker import commands
    from flask_multi_redis.direct import DirectConnection, SubscriberConnection

    stop = threading.Event()

    def flicker() -> None:
        subscriber = SubscriberConnection(redis.Redis.from_url(redis_url, socket_timeout=5))
        while not stop.is_set():
            for command in ("SUBSCRIBE", "UNSUBSCRIBE"):
                subscriber.send([(command, "race")])
                while subscriber.next_message(5)[0] != command.lower().encode():
                    pass  # a message published meanwhile
        subscriber.close()

    thread = threading.Thread(target=flicker)
    thread.start()
    connection = DirectConnection(redis.Redis.from_url(redis_url))
    payload = b"x" * 200_000
    try:
        for _ in range(3000):
            executed = connection.round_trip(commands.counted_publish("race", payload))[-1]
            (_, numsub), published = executed
            assert numsub == published
    finally:
        stop.set()
        thread.join(10)
        connection.close()


class Checks:
    """What posted commands' checks were told, in order."""

    def __init__(self) -> None:
        self.told: list[list[object] | redis.RedisError] = []

    def __call__(self, replies: list[object] | redis.RedisError) -> None:
        self.told.append(replies)


def test_posted_commands_have_their_replies_read_before_the_next_round_trip(
    pipelined: PipelinedConnection, redis_server: RedisServer
) -> None:
    checks = Checks()
    redis_server.admin().set("a string", "x")
    pipelined.post([("INCR", "posted"), ("LPUSH", "a string", "y")], checks)
    wait_until(lambda: redis_server.admin().get("posted") == b"1")  # it ran, its replies unread
    assert checks.told == []
    assert pipelined.execute("ECHO", "next") == b"next"  # not a posted command's reply
    ((incremented, refused),) = checks.told  # type: ignore[misc]
    assert incremented == 1
    assert isinstance(refused, redis.ResponseError)
    assert "WRONGTYPE" in str(refused)


def test_a_post_is_written_before_the_replies_of_the_one_before_it_are_read(
    pipelined: PipelinedConnection, redis_server: RedisServer
) -> None:
    """The answering thread reads an earlier answer's replies after its next answer is on its way, not before."""
    checks = Checks()
    pipelined.post([("BLPOP", "gate", 5)], checks)  # its reply comes when the gate opens
    wait_until(lambda: len(blocked(redis_server)) == 1)
    poster, posted = in_threads(1, lambda: pipelined.post([("INCR", "posted")], checks))
    # written while the BLPOP's reply is still unread: Redis holds it in the blocked client's query buffer
    wait_until(lambda: [int(c["qbuf"]) > 0 for c in blocked(redis_server)] == [True])
    assert checks.told == []
    redis_server.admin().rpush("gate", "open")
    poster[0].join(10)
    assert posted == [None]
    assert checks.told == [[[b"gate", b"open"]], [1]]  # the second's came right behind the first's: read too
    assert pipelined.execute("GET", "posted") == b"1"


def test_a_post_after_the_server_closed_the_connection_is_sent_again_at_once(
    pipelined: PipelinedConnection, redis_server: RedisServer
) -> None:
    """The earlier answer's replies came before the server closed the connection (CLIENT KILL, a restart, its
    idle timeout): the next answer, written behind them, is found lost at once, not at the next round trip."""
    checks, admin = Checks(), redis_server.admin()
    pipelined.post([("INCR", "first")], checks)
    wait_until(lambda: admin.get("first") == b"1")
    admin.client_kill_filter(_type="normal", skipme=True)
    wait_until(lambda: not [c for c in admin.client_list() if c.get("name") == "pipelined"])
    pipelined.post([("INCR", "second")], checks)
    assert checks.told == [[1], [1]]  # the first one's replies, then the second's, sent again on a new connection
    assert admin.get("second") == b"1"


def test_posted_commands_lost_with_the_connection_are_sent_again(
    pipelined: PipelinedConnection, redis_server: RedisServer
) -> None:
    checks = Checks()
    pipelined.post([("BLPOP", "gate", 5), ("RPUSH", "posted", "x")], checks)  # the RPUSH waits behind the BLPOP
    wait_until(lambda: len(blocked(redis_server)) == 1)
    redis_server.admin().client_kill_filter(_id=blocked(redis_server)[0]["id"])  # neither reply ever comes
    assert redis_server.admin().lrange("posted", 0, -1) == []
    redis_server.admin().rpush("gate", "open")
    assert pipelined.execute("ECHO", "next") == b"next"
    assert checks.told == [[[b"gate", b"open"], 1]]
    assert redis_server.admin().lrange("posted", 0, -1) == [b"x"]  # sent again, run once


def test_closing_reads_the_replies_of_posted_commands(pipelined: PipelinedConnection) -> None:
    checks = Checks()
    pipelined.post([("INCR", "posted")], checks)
    pipelined.close(5)
    assert checks.told == [[1]]
    assert pipelined.execute("GET", "posted") == b"1"  # open again on the next use
