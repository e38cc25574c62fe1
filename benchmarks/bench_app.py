"""The app the benchmarks serve: a handler for ``bench.add`` (in ``router``, for the worker) and a command
``bench.ping`` that every web worker answers."""

from __future__ import annotations

import os
import time

from flask import Flask
from pydantic import BaseModel

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Channel, Router


class AddIn(BaseModel):
    a: int
    b: int


class AddOut(BaseModel):
    result: int


class Pong(BaseModel):
    pid: int


class Blob(BaseModel):
    """A payload of any size: the payload curve's request and reply."""

    data: str


class Big(BaseModel):
    """About 10 KB as JSON: the codec scenario's large payload."""

    items: list[str]


add = Channel("bench.add", request=AddIn, reply=AddOut)
incr = Channel("bench.incr", request=AddIn, reply=AddOut)  # its handler does one Redis command
nap = Channel("bench.nap", request=AddIn, reply=AddOut)  # its handler waits 1 ms (I/O of some other kind)
big = Channel("bench.big", request=Big, reply=Big)
echo = Channel("bench.echo", request=Blob, reply=Blob)  # its handler answers with the request's payload
ping = Channel("bench.ping", reply=Pong)

#: The largest message the benchmark's brokers take: the payload curve goes to 1 MiB of payload.
MAX_MESSAGE_SIZE = 2 * 1024 * 1024

redis = FlaskRedisSingle()
redis.broker.configure(max_message_size=MAX_MESSAGE_SIZE)
router = Router()


@router.handler(add)
def add_numbers(message: AddIn) -> AddOut:
    return AddOut(result=message.a + message.b)


@router.handler(incr)
def add_and_count(message: AddIn) -> AddOut:
    redis.getRedis().incr("bench:handled")
    return AddOut(result=message.a + message.b)


@router.handler(nap)
def add_after_a_nap(message: AddIn) -> AddOut:
    time.sleep(0.001)
    return AddOut(result=message.a + message.b)


@router.handler(echo)
def echo_back(message: Blob) -> Blob:
    return message


#: The handlers' channels by the work they do (BENCH_WORK): nothing, one Redis command, a 1 ms wait.
WORK = {"none": add, "incr": incr, "nap": nap}


@redis.broker.command(ping)
def answer_ping(_: object) -> Pong:
    return Pong(pid=os.getpid())


def config() -> dict[str, object]:
    """The benchmark's Redis config: BENCH_SIGNING_KEY in the environment turns signing on."""
    found: dict[str, object] = {"URL": os.environ["REDIS_URL"], "PREFIX": "bench"}
    if os.environ.get("BENCH_SIGNING_KEY"):
        found["SIGNING_KEY"] = os.environ["BENCH_SIGNING_KEY"]
    return found


def create_app() -> Flask:
    app = Flask("bench")
    app.config["REDIS"] = config()
    if os.environ.get("BENCH_SERVE_HANDLERS"):  # gunicorn's web workers serve them too
        redis.broker.include_router(router)
    redis.init_app(app)
    return app
