"""The serving side in one process: a full handler pool answers Overloaded, typed, and loses nothing else."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import orjson
import pytest
import redis

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Channel, Overloaded, RemoteError, commands
from flask_multi_redis.broker.caller import new_id
from flask_multi_redis.broker.envelope import deadline_after, pack
from flask_multi_redis.broker.pipeline import PipelinedConnection
from flask_multi_redis.broker.responder import IDLE_INLINE

from .proxy import proxy_to
from .servers import RedisServer
from .waiting import wait_until

held = Channel("responder.held", reply=str)


@pytest.fixture
def ext(redis_url: str) -> Iterator[FlaskRedisSingle]:
    """A process that serves and calls, with room for one running handler and one waiting."""
    ext = FlaskRedisSingle({"URL": redis_url, "PREFIX": "responder"})
    ext.broker.concurrency = 1
    ext.broker.max_pending = 1
    ext.broker.inline_below = 0  # every handler goes through the pool
    yield ext
    ext.broker.stop()


def test_a_full_handler_pool_answers_overloaded(ext: FlaskRedisSingle) -> None:
    release, running = threading.Event(), threading.Event()

    @ext.broker.handler(held)
    def hold(_: object) -> str:
        running.set()
        release.wait(10)
        return "done"

    ext.broker.start(timeout=5)
    results: list[object] = []

    def call() -> None:
        results.append(ext.broker.request(held, None, timeout=10))

    threads = [threading.Thread(target=call), threading.Thread(target=call)]
    threads[0].start()
    assert running.wait(5)  # the first runs
    threads[1].start()
    wait_until(lambda: ext.broker.health().in_flight == 2)  # the second waits for it
    with pytest.raises(Overloaded) as caught:
        ext.broker.request(held, None, timeout=5)
    assert isinstance(caught.value, RemoteError)
    assert caught.value.remote_type == "Overloaded"
    release.set()
    for thread in threads:
        thread.join(10)
    assert results == ["done", "done"]
    assert ext.broker.health().counters.overloaded == 1


def test_a_claim_whose_reply_was_lost_is_claimed_again_and_served(redis_server: RedisServer, redis_url: str) -> None:
    """The claim reaches Redis but its reply is lost (the connection dies just then): the serving process
    claims once more, reads that it has the request, and serves it; nobody waits out a timeout."""
    with proxy_to(redis_server.host, redis_server.port) as proxy:
        served = FlaskRedisSingle({"URL": proxy.url, "PREFIX": "claims", "SOCKET_TIMEOUT": 0.5})
        try:
            served.broker.handler(held)(lambda _: "served")
            served.broker.start(timeout=5)
            proxy.lose_reply_to(b":fmr:claim:")
            client = redis.Redis.from_url(redis_url)
            request_id = new_id()
            request = pack("request", request_id, held.name, b"null", deadline=deadline_after(5), max_size=4096)
            assert client.publish(f"claims:fmr:req:{held.name}", request) == 1  # as a foreign client would
            key = f"claims:fmr:reply:{request_id}"
            answer = client.blmove(key, key, 5, "RIGHT", "RIGHT")
            client.close()
            assert answer is not None
            assert orjson.loads(answer)["body"] == "served"
            assert proxy.lost_replies == 1  # the claim's
            assert served.broker.health().counters.handled == 1
        finally:
            served.broker.stop()


@pytest.mark.parametrize(("holder", "ours"), [("me", True), ("another", False)])
def test_a_claim_sent_again_and_refused_is_decided_by_who_holds_it(
    redis_server: RedisServer, redis_url: str, holder: str, ours: bool
) -> None:
    """Out of memory, Redis refuses the second SET (OOM) whoever holds the claim: the GET says whose it is, so
    a process never answers BrokerUnavailable for a request another process may be running."""
    admin = redis_server.admin()
    key = f"claims:fmr:claim:{new_id()}"
    admin.set(key, holder, px=5000)
    pipelined = PipelinedConnection(redis.Redis.from_url(redis_url))
    try:
        admin.config_set("maxmemory", 1)
        replies = pipelined.run(commands.claim_again(key, "me", 5000), raise_errors=False)
        assert isinstance(replies[0], redis.exceptions.OutOfMemoryError)
        assert commands.claimed_by(replies, "me") is ours
    finally:
        admin.config_set("maxmemory", 0)
        pipelined.close(5, for_good=True)


where = Channel("responder.where", request=float, reply=str)


def test_a_handler_a_little_slower_than_the_mark_runs_inline_until_messages_wait_behind_it(redis_url: str) -> None:
    """Below ``inline_below`` a handler runs on the listener's thread; up to IDLE_INLINE times longer, it stays
    there while no other message has arrived behind its own (so that a handler whose time sits around the mark
    does not go back and forth); slower still, or with messages waiting, it goes to the pool."""
    ext = FlaskRedisSingle({"URL": redis_url, "PREFIX": "inline"})
    ext.broker.inline_below = 0.01  # 10 ms, so that this machine's own pauses cannot move a handler across it
    assert 3 < IDLE_INLINE < 6  # the band, 10 ms to 10 * IDLE_INLINE, holds 30 ms and not the 64 ms below

    @ext.broker.handler(where)
    def sleep_then_say_where(seconds: float) -> str:
        time.sleep(seconds)
        return threading.current_thread().name

    try:
        ext.broker.start(timeout=5)
        request = ext.broker.request
        assert request(where, 0.03, timeout=5).startswith("flask-redis-handler")  # its first run: the pool
        wait_until(lambda: ext.broker.health().in_flight == 0)  # the pool thread has let go of it
        alone = [request(where, 0.03, timeout=5) for _ in range(3)]
        assert all(name.startswith("flask-redis-listener") for name in alone), alone

        names: list[str] = []
        callers = [threading.Thread(target=lambda: names.append(request(where, 0.03, timeout=10))) for _ in range(8)]
        for thread in callers:
            thread.start()
        for thread in callers:
            thread.join(10)
        assert len(names) == 8
        assert any(name.startswith("flask-redis-handler") for name in names), names  # they waited behind it

        wait_until(lambda: ext.broker.health().in_flight == 0)
        request(where, 0.2, timeout=5)  # slower: run where its average so far says, which it then passes
        slow = [request(where, 0.2, timeout=5) for _ in range(2)]
        assert all(name.startswith("flask-redis-handler") for name in slow), slow
    finally:
        ext.broker.stop()


stat = Channel("responder.stat", reply=int)
fan_out = Channel("responder.fan_out", reply=str)


def test_a_handler_that_waits_on_a_broker_call_of_its_own_never_runs_on_the_listeners_thread(redis_url: str) -> None:
    """The replies to its call come over the listener's connection: a run on the listener's thread would hold
    them up until the call timed out. Its first run, in the pool, shows it calls; then it stays there."""
    ext = FlaskRedisSingle({"URL": redis_url, "PREFIX": "nested"})
    ext.broker.inline_below = 0.05  # far above what the handler takes: only the call it makes keeps it off

    @ext.broker.command(stat)
    def one(_: object) -> int:
        return 1

    @ext.broker.handler(fan_out)
    def gather_then_say_where(_: object) -> str:
        replies = ext.broker.broadcast(stat, None, gather=True, timeout=2)
        return f"{threading.current_thread().name} {[reply.value for reply in replies]}"

    try:
        ext.broker.start(timeout=5)
        answers = []
        for _ in range(6):
            answers.append(ext.broker.request(fan_out, None, timeout=5))
            wait_until(lambda: ext.broker.health().in_flight == 0)
        assert all(answer.startswith("flask-redis-handler") and answer.endswith(" [1]") for answer in answers), answers
    finally:
        ext.broker.stop()
