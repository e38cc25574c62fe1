"""``flask redis ping``: one line per database, the password hidden, a non-zero exit when one is down."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from flask_multi_redis import FlaskRedisMulti, FlaskRedisSingle
from flask_multi_redis.broker import BrokerUnavailable

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
    assert result.output.startswith("Error: could not read the registry: ")
    assert f"127.0.0.1:{down}" in result.output
    with app.app_context(), pytest.raises(BrokerUnavailable, match="could not read the registry"):
        ext.broker.processes()
