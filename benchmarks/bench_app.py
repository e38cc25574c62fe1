"""The app the benchmarks serve: a handler for ``bench.add`` (in ``router``, for the worker) and a command
``bench.ping`` that every web worker answers."""

from __future__ import annotations

import os

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


class Big(BaseModel):
    """About 10 KB as JSON: the codec scenario's large payload."""

    items: list[str]


add = Channel("bench.add", request=AddIn, reply=AddOut)
big = Channel("bench.big", request=Big, reply=Big)
ping = Channel("bench.ping", reply=Pong)

redis = FlaskRedisSingle()
router = Router()


@router.handler(add)
def add_numbers(message: AddIn) -> AddOut:
    return AddOut(result=message.a + message.b)


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
    redis.init_app(app)
    return app
