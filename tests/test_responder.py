"""The serving side in one process: a full handler pool answers Overloaded, typed, and loses nothing else."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Channel, Overloaded, RemoteError

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
