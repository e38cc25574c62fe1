"""A Flask app with broker routes, served by the tests in real processes (gunicorn workers, serve.py).

Configured from the environment: REDIS_URL (a test server) and REDIS_PREFIX.
"""

from __future__ import annotations

import os
import sys
import threading

from flask import Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from pydantic import BaseModel

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Channel, RemoteError, Router


class AddIn(BaseModel):
    a: int
    b: int


class AddOut(BaseModel):
    sum: int
    pid: int


class Who(BaseModel):
    pid: int
    role: str
    app: str
    greenlet: bool  # the command ran in a gevent greenlet, not an OS thread
    thread: str  # the name of the thread (or greenlet) that ran it


class Stats(BaseModel):
    pid: int
    added: int
    expired: int
    dropped: int
    failed: int


class Gate(BaseModel):
    """The handler blocks until the test pushes to ``key`` (how a test holds a request in flight)."""

    key: str
    timeout: float = 10.0


add = Channel("math.add", request=AddIn, reply=AddOut)
fail = Channel("test.fail", request=dict, reply=dict)
bad_reply = Channel("test.bad-reply", request=dict, reply=AddOut)
gate = Channel("test.gate", request=Gate, reply=AddOut)
whoami = Channel("test.whoami", reply=Who)
stats = Channel("test.stats", reply=Stats)

redis = FlaskRedisSingle()
backend = Router()  # served by serve.py only: the web workers call it, they do not serve it
added: list[int] = []  # one entry per math.add handled in this process (append is atomic)


@redis.broker.command(whoami)
def who_am_i(_: object) -> Who:
    gevent = sys.modules.get("gevent")  # imported by whoever patched; the app itself runs without it
    greenlet = gevent is not None and isinstance(gevent.getcurrent(), gevent.Greenlet)
    thread = threading.current_thread().name
    return Who(pid=os.getpid(), role=redis.broker.role, app=current_app.name, greenlet=greenlet, thread=thread)


@redis.broker.command(stats)
def report_stats(_: object) -> Stats:
    counters = redis.broker.health().counters
    return Stats(
        pid=os.getpid(),
        added=len(added),
        expired=counters.expired,
        dropped=counters.dropped,
        failed=counters.failed,
    )


@backend.handler(add)
def add_numbers(message: AddIn) -> AddOut:
    added.append(message.a)
    return AddOut(sum=message.a + message.b, pid=os.getpid())


@backend.handler(fail)
def always_fails(message: dict[str, object]) -> dict[str, object]:
    raise ValueError(f"refused {sorted(message)}")


@backend.handler(bad_reply)
def wrong_reply(_: dict[str, object]) -> dict[str, object]:
    return {"not": "an AddOut"}


@backend.handler(gate)
def wait_at_gate(message: Gate) -> AddOut:
    if redis.getRedis().blpop([message.key], timeout=message.timeout) is None:
        raise TimeoutError("the gate stayed closed")
    return AddOut(sum=0, pid=os.getpid())


def create_app() -> Flask:
    app = Flask("svc")
    app.config["REDIS"] = {"URL": os.environ["REDIS_URL"], "PREFIX": os.environ.get("REDIS_PREFIX", "test")}
    if os.environ.get("REDIS_SIGNING_KEYS"):
        app.config["REDIS"]["SIGNING_KEYS"] = os.environ["REDIS_SIGNING_KEYS"]
    if os.environ.get("SVC_INLINE_BELOW"):  # 0: every handler in the pool
        redis.broker.configure(inline_below=float(os.environ["SVC_INLINE_BELOW"]))
    redis.init_app(app)
    if os.environ.get("SVC_METRICS"):  # the metrics extra: /metrics beside the worker's /live and /ready
        from flask_multi_redis.metrics import BrokerMetrics

        BrokerMetrics(redis)

    @app.get("/add")
    def call_add() -> ResponseReturnValue:
        try:
            out = redis.broker.request(add, AddIn(a=int(request.args["a"]), b=int(request.args["b"])), timeout=5)
        except RemoteError as exc:
            return jsonify(error=str(exc)), 502
        return jsonify(sum=out.sum, served_by=out.pid, web=os.getpid())

    @app.get("/pid")
    def pid() -> ResponseReturnValue:
        return jsonify(pid=os.getpid())

    return app
