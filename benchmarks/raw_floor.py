"""The transport floor: the floor's messages with raw sockets and hiredis, no client library, no framework.

The caller sends PUBLISH of the request and BLPOP of its reply list in one write and reads both replies; the
responder, subscribed on a socket of its own, answers each request with RPUSH and PEXPIRE in one write on a
second socket, after the work ``BENCH_WORK`` asks for (its Redis command through redis-py). The JSON is the
floor's (:mod:`benchmarks.floor`). What is left above this is what a library costs, ours included.

Child entry points: ``python -m benchmarks.raw_floor responder`` and ``python -m benchmarks.raw_floor caller
--n N`` (``REDIS_URL`` and ``BENCH_CHANNEL`` from the environment).
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import hiredis
import orjson
import redis

from benchmarks.common import CPU_PIDS, Result, child_env, python, redis_pid
from benchmarks.floor import REPLY_TTL_MS, child_main, running, time_caller, wait_for_subscriber, work_of

SYSTEM = "hiredis floor"


class Raw:
    """One socket to Redis with a hiredis reader: write bytes, read whole replies."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = hiredis.Reader()

    def send(self, *commands: tuple[Any, ...]) -> None:
        self.sock.sendall(b"".join(hiredis.pack_command(command) for command in commands))

    def read(self) -> Any:
        while (reply := self.reader.gets()) is False:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("Redis closed the connection")
            self.reader.feed(data)
        return reply


def run(url: str, n_seq: int) -> list[Result]:
    """Time the transport floor's sequential round trip (``n_seq`` calls)."""
    if not n_seq:
        return []
    channel = f"bench:raw:{uuid.uuid4().hex[:12]}"
    env = child_env(url, BENCH_CHANNEL=channel)
    with running([python(), "-m", "benchmarks.raw_floor", "responder"], env, "hiredis floor responder") as responder:
        wait_for_subscriber(url, channel, responder)
        measured = {**env, CPU_PIDS: f"server={responder.pid},redis={redis_pid(url)}"}
        info = {"responder": "raw sockets + hiredis, 1 process", "encoding": "json", "caller": "plain loop"}
        return [time_caller(SYSTEM, ["benchmarks.raw_floor", "caller"], measured, n_seq, **info)]


def responder(url: str, channel: str) -> None:
    """Answer every request on ``channel`` until terminated, one at a time."""
    listening, answering = Raw(url), Raw(url)
    work = work_of(redis.Redis.from_url(url))  # a Redis command goes through redis-py, as a handler's does
    listening.send(("SUBSCRIBE", channel))
    listening.read()
    while True:
        kind, _, data = listening.read()
        if kind != b"message":
            continue
        request = orjson.loads(data)
        work()
        reply = orjson.dumps({"id": request["id"], "result": request["a"] + request["b"]})
        key = request["reply_to"]
        answering.send(("RPUSH", key, reply), ("PEXPIRE", key, REPLY_TTL_MS))
        answering.read()
        answering.read()


def caller(url: str, channel: str, argv: Sequence[str]) -> None:
    """The timed caller: PUBLISH and BLPOP in one write (see :mod:`benchmarks.peer_apps.driver`)."""
    from benchmarks.peer_apps import driver

    raw = Raw(url)

    def call(i: int, timeout: float) -> None:
        request_id = uuid.uuid4().hex
        reply_to = f"bench:raw:reply:{request_id}"
        request = orjson.dumps({"id": request_id, "reply_to": reply_to, "a": i, "b": 1})
        raw.send(("PUBLISH", channel, request), ("BLPOP", reply_to, int(timeout) or 1))
        if not raw.read():
            raw.read()  # the BLPOP's timeout
            raise RuntimeError(f"no responder on {channel}")
        popped = raw.read()
        if popped is None:
            raise TimeoutError(f"no reply to request {i} within {timeout} s")
        driver.check(i, orjson.loads(popped[1])["result"])

    driver.main(call, argv)


if __name__ == "__main__":
    child_main("benchmarks.raw_floor", responder, caller)
