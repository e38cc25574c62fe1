"""``flask redis``: ``ping`` (one line per database, the password hidden, a non-zero exit when one is down),
``workers`` (a table or JSON, naming the prefix searched), ``channels`` (kinds and JSON Schemas), ``call``; and
``flask-redis-worker --version``."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from flask_multi_redis import FlaskRedisMulti, FlaskRedisSingle
from flask_multi_redis.broker import BrokerUnavailable, Channel
from flask_multi_redis.broker.health import Counters, MinuteSummary

from .apps.svc import AddIn, AddOut, add
from .servers import RedisServer
from .test_extension import closed_port

MakeApp = Callable[..., Flask]


def test_ping_reports_address_version_and_round_trip(make_app: MakeApp, password_server: RedisServer) -> None:
    app = make_app(
        REDIS={
            "HOST": password_server.host,
            "PORT": password_server.port,
            "PASSWORD": password_server.password,
            "DATABASES": {"General": 0, "Jobs": 3},
        }
    )
    FlaskRedisMulti(app)
    result = app.test_cli_runner().invoke(args=["redis", "ping"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 3
    assert lines[2] == "broker messages are not signed: set REDIS.SIGNING_KEY (see the README)"
    assert lines[0].startswith("General")
    assert f"redis://:***@127.0.0.1:{password_server.port}/0" in lines[0]
    assert f"/3  redis {password_server.version}" in lines[1]
    assert lines[1].endswith(" ms")
    assert str(password_server.password) not in result.output


def test_ping_fails_with_one_line_per_unreachable_database(make_app: MakeApp, redis_server: RedisServer) -> None:
    down = closed_port()
    app = make_app(
        REDIS={
            "HOST": "127.0.0.1",
            "PORT": redis_server.port,
            "PASSWORD": "hidden-pw",
            "DATABASES": {"Up": {"PASSWORD": "", "DATABASE": 0}, "Down": {"PORT": down}},
        }
    )
    FlaskRedisMulti(app)
    result = app.test_cli_runner().invoke(args=["redis", "ping"])
    assert result.exit_code == 1
    up_line, down_line = result.output.splitlines()[:2]
    assert up_line.startswith("Up ")
    assert " ms" in up_line
    assert down_line.startswith("Down")
    assert "unreachable:" in down_line
    assert str(down) in down_line
    assert "hidden-pw" not in result.output


def test_group_is_named_after_the_config_element(make_app: MakeApp, redis_url: str) -> None:
    app = make_app(CACHE={"URL": redis_url})
    FlaskRedisSingle(app, config_element="CACHE")
    result = app.test_cli_runner().invoke(args=["cache", "ping"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("default  redis://127.0.0.1:")


def test_flask_command_line_in_a_real_process(tmp_path: Path, redis_url: str) -> None:
    (tmp_path / "pingapp.py").write_text(
        "from flask import Flask\n"
        "from flask_multi_redis import FlaskRedisSingle\n"
        "app = Flask(__name__)\n"
        f"app.config['REDIS_URL'] = {redis_url + '/4'!r}\n"
        "FlaskRedisSingle(app)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "pingapp", "redis", "ping"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"{redis_url}/4  redis " in done.stdout


def test_ping_needs_no_info_permission(make_app: MakeApp, redis_server: RedisServer) -> None:
    """A user who may not run INFO (nor anything of @admin and @dangerous) can still be pinged."""
    redis_server.admin().acl_setuser(
        "pinger", enabled=True, passwords=["+ping-pw"], keys=["*"], commands=["+@all", "-@admin", "-@dangerous"]
    )
    app = make_app(REDIS={"URL": f"redis://pinger:ping-pw@127.0.0.1:{redis_server.port}/0"})
    FlaskRedisSingle(app)
    result = app.test_cli_runner().invoke(args=["redis", "ping"])
    assert result.exit_code == 0, result.output
    assert f"redis {redis_server.version}  " in result.output


def test_ping_over_resp2(make_app: MakeApp, redis_server: RedisServer) -> None:
    app = make_app(REDIS={"URL": redis_server.url, "OPTIONS": {"protocol": 2}})
    FlaskRedisSingle(app)
    result = app.test_cli_runner().invoke(args=["redis", "ping"])
    assert result.exit_code == 0, result.output
    assert f"redis {redis_server.version}  " in result.output


def test_workers_with_redis_down_names_the_reason(make_app: MakeApp) -> None:
    down = closed_port()
    app = make_app(REDIS={"HOST": "127.0.0.1", "PORT": down})
    ext = FlaskRedisSingle(app)
    result = app.test_cli_runner().invoke(args=["redis", "workers"])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: Redis at redis://127.0.0.1:{down}/0 (prefix ''): could not read the ")
    assert "Connection refused" in result.output or "ConnectionError" in result.output
    with app.app_context(), pytest.raises(BrokerUnavailable, match="could not read the registry"):
        ext.broker.processes()


pid = Channel("cli.pid", request=dict, reply=dict)


def served_app(make_app: MakeApp, redis_url: str, prefix: str = "cli") -> tuple[Flask, FlaskRedisSingle]:
    app = make_app(REDIS={"URL": redis_url, "PREFIX": prefix})
    ext = FlaskRedisSingle(app)
    ext.broker.handler(add)(lambda message: AddOut(sum=message.a + message.b, pid=os.getpid()))
    ext.broker.command(pid)(lambda message: {"pid": os.getpid()})
    with app.app_context():
        assert ext.broker.wait_ready(10)
    return app, ext


def test_workers_as_json_and_naming_the_prefix(make_app: MakeApp, redis_url: str) -> None:
    app, ext = served_app(make_app, redis_url)
    runner = app.test_cli_runner()
    table = runner.invoke(args=["redis", "workers"])
    assert table.exit_code == 0, table.output
    assert table.output.splitlines()[-1] == "1 live process(es) with the prefix 'cli'"
    listed = json.loads(runner.invoke(args=["redis", "workers", "--json"]).output)
    assert listed["prefix"] == "cli"
    assert [(p["pid"], p["handlers"], p["commands"]) for p in listed["processes"]] == [
        (os.getpid(), ["math.add"], ["cli.pid"])
    ]
    with app.app_context():
        ext.broker.stop()


def test_channels_with_kinds_and_schemas(make_app: MakeApp, redis_url: str) -> None:
    app, ext = served_app(make_app, redis_url)
    runner = app.test_cli_runner()
    table = runner.invoke(args=["redis", "channels"]).output.splitlines()
    assert table[0].split() == ["CHANNEL", "KIND", "REQUEST", "REPLY"]
    assert table[1].split() == ["cli.pid", "command", "dict", "dict"]
    assert table[2].split() == ["math.add", "handler", "AddIn", "AddOut"]
    assert table[-1] == "2 channel(s)"
    listed = json.loads(runner.invoke(args=["redis", "channels", "--json"]).output)
    assert [(c["channel"], c["kind"]) for c in listed] == [("cli.pid", "command"), ("math.add", "handler")]
    assert listed[1]["request"]["properties"].keys() == {"a", "b"}
    assert listed[1]["reply"]["required"] == ["sum", "pid"]
    with app.app_context():
        ext.broker.stop()


def test_call_a_handler_and_a_broadcast(make_app: MakeApp, redis_url: str) -> None:
    app, ext = served_app(make_app, redis_url)
    runner = app.test_cli_runner()
    done = runner.invoke(args=["redis", "call", "math.add", '{"a": 2, "b": 3}'])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output) == {"sum": 5, "pid": os.getpid()}
    gathered = json.loads(runner.invoke(args=["redis", "call", "cli.pid", "--broadcast"]).output)
    assert [(reply["ok"], reply["value"]) for reply in gathered] == [(True, {"pid": os.getpid()})]
    invalid = runner.invoke(args=["redis", "call", "math.add", '{"a": "x"}'])
    assert invalid.exit_code == 1
    assert invalid.output.startswith("Error: InvalidMessage: ")
    nobody = runner.invoke(args=["redis", "call", "nobody.home", "{}"])
    assert nobody.exit_code == 1
    assert "NoResponders" in nobody.output
    assert "prefix 'cli'" in nobody.output
    not_json = runner.invoke(args=["redis", "call", "math.add", "{nope"])
    assert not_json.exit_code == 2
    assert "Invalid value for 'MESSAGE': is not JSON" in not_json.output
    with app.app_context():
        ext.broker.stop()


def test_debug_lines_per_request_and_handler_run(
    make_app: MakeApp, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, ext = served_app(make_app, redis_url)
    with caplog.at_level(logging.DEBUG, logger="flask_multi_redis"), app.app_context():
        assert ext.broker.request(add, AddIn(a=1, b=1), timeout=5).sum == 2
        ext.broker.stop()
    messages = [record.getMessage() for record in caplog.records]
    called = [m for m in messages if m.startswith("request: channel=math.add id=") and m.endswith(" ms ok")]
    ran = [m for m in messages if m.startswith("handler ran: channel=math.add id=")]
    assert len(called) == 1, messages
    assert len(ran) == 1, messages
    call_id = called[0].split()[2].removeprefix("id=")
    assert re.fullmatch("[0-9a-f]{32}", call_id)
    assert ran[0].split()[3] == f"id={call_id}"  # the caller's line and the handler's carry the same id


def test_a_summary_line_per_minute(caplog: pytest.LogCaptureFixture) -> None:
    counters = Counters()
    summary = MinuteSummary("web@host:1", counters, every=0)
    with caplog.at_level(logging.INFO, logger="flask_multi_redis"):
        summary.tick()  # a quiet minute: nothing
        counters.count("handled")
        counters.count("handled")
        counters.count("dropped")
        summary.tick()
    assert [record.getMessage() for record in caplog.records] == [
        "broker web@host:1, last minute: handled 2, failed 0, expired 0, dropped 1, overloaded 0"
    ]


def test_the_worker_tells_its_version() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "flask-redis-worker"), "--version"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("flask-redis-worker, version ")
