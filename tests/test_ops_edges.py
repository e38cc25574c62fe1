"""The operating tools at their edges: `flask redis ...` and the worker run as real processes against real Redis,
and against a Redis Cluster URL that nothing answers."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import ROOT
from .processes import WorkerProcess, run_cli
from .test_extension import closed_port

#: An app whose broker serves channels whose replies are sets (pydantic validates a JSON array into a set[int]).
SET_APP = """
import os
from flask import Flask
from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Channel

tags = Channel("ops.tags", request=dict, reply=set[int])
every_tag = Channel("ops.every-tag", reply=set[int])
ext = FlaskRedisSingle()


@ext.broker.handler(tags)
def tags_of(message):
    return {3, 1, 2}


@ext.broker.command(every_tag)
def every_tag_of(message):
    return {7}


def create_app():
    app = Flask("ops")
    app.config["REDIS"] = {"URL": os.environ["REDIS_URL"], "PREFIX": os.environ["REDIS_PREFIX"]}
    ext.init_app(app)
    return app
"""


def flask_cli(env: dict[str, str], app: str, *args: str) -> tuple[int, str, str]:
    done = run_cli(env, sys.executable, "-m", "flask", "--app", app, "redis", *args)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize(
    "args",
    [("ping",), ("workers",), ("call", "math.add", '{"a": 1, "b": 2}'), ("asyncapi",)],
    ids=["ping", "workers", "call", "asyncapi"],
)
def test_an_unreachable_cluster_is_a_one_line_error_not_a_traceback(
    broker_env: dict[str, str], args: tuple[str, ...]
) -> None:
    """README: `ping` exits 1 with a one-line reason for each database it cannot reach; `workers`, `call` and
    `asyncapi` errors name the address (password hidden), the prefix and the reason: with a Redis Cluster that
    nothing answers too (its client reads the slot map when it is made), not a Python traceback."""
    broker_env["REDIS_URL"] = f"redis+cluster://127.0.0.1:{closed_port()}"
    code, out, err = flask_cli(broker_env, "tests.apps.svc:create_app()", *args)
    assert code != 0, out
    assert "Traceback" not in err, err
    if args[0] == "ping":
        assert "unreachable" in out + err
    else:
        assert (out + err).startswith("Error: "), out + err


@pytest.fixture
def set_app(broker_env: dict[str, str], tmp_path: Path) -> str:
    (tmp_path / "ops_set_app.py").write_text(SET_APP)
    broker_env["PYTHONPATH"] = f"{tmp_path}:{ROOT}"
    return "ops_set_app:create_app()"


@pytest.fixture
def set_worker(set_app: str, start_worker: Callable[..., WorkerProcess]) -> WorkerProcess:
    from .processes import WORKER

    return start_worker(command=(WORKER, set_app))


@pytest.mark.parametrize(
    ("args", "expected"),
    [(("call", "ops.tags", "{}"), [1, 2, 3]), (("call", "ops.every-tag", "--broadcast"), None)],
    ids=["request", "broadcast"],
)
def test_call_prints_a_set_reply_as_json(
    broker_env: dict[str, str],
    set_app: str,
    set_worker: WorkerProcess,
    args: tuple[str, ...],
    expected: list[int] | None,
) -> None:
    """README: `call` prints the reply as JSON: a set[int] reply (a JSON array on the wire, a set once validated) as
    its JSON array, as pydantic writes it."""
    code, out, err = flask_cli(broker_env, set_app, *args)
    assert "Traceback" not in err, err
    assert code == 0, err
    printed = json.loads(out)
    if expected is not None:
        assert sorted(printed) == expected
    else:
        assert [sorted(reply["value"]) for reply in printed if reply["ok"]][:1] == [[7]]


def test_call_with_a_nan_timeout_is_a_usage_error(broker_env: dict[str, str]) -> None:
    """`--timeout nan` is a usage error (exit 2) naming --timeout: click's FloatRange lets NaN through, as no
    comparison with it is true."""
    code, out, err = flask_cli(broker_env, "tests.apps.svc:create_app()", "call", "math.add", "{}", "--timeout", "nan")
    assert "Traceback" not in err, err
    assert code == 2, out + err
    assert "--timeout" in err


def test_a_worker_started_before_its_cluster_answers_does_not_die_with_a_traceback(
    broker_env: dict[str, str], start_worker: Callable[..., WorkerProcess]
) -> None:
    """A worker started before its Redis Cluster answers (a compose stack starting) says it cannot connect and
    keeps trying, as on one server that is down, instead of dying with a traceback."""
    from .waiting import wait_until

    broker_env["REDIS_URL"] = f"redis+cluster://127.0.0.1:{closed_port()}"
    worker = start_worker(ready=False)
    wait_until(lambda: worker.process.poll() is not None or "cannot connect" in worker.log, timeout=20)
    assert "Traceback" not in worker.log, worker.log
