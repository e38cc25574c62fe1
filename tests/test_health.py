"""Health for probes: the blueprint in a web app and flask-redis-worker --health-port, live and ready (200),
not ready while Redis is away (503, saying why), live again and ready once it is back."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest
from flask import Flask

from examples.local_redis import free_port
from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Channel
from flask_multi_redis.health import health_blueprint

from .conftest import ServerFactory
from .processes import APP, WORKER, WorkerProcess, probe, run_cli
from .waiting import wait_until

ping = Channel("health.ping", request=dict, reply=dict)


def test_the_blueprint_says_live_and_ready_and_why_not(redis_server_factory: ServerFactory) -> None:
    server = redis_server_factory()
    app = Flask("web")
    app.config["REDIS"] = {"URL": server.url, "PREFIX": "health", "SOCKET_TIMEOUT": 1}
    redis = FlaskRedisSingle(app)
    redis.broker.handler(ping)(lambda message: message)
    app.register_blueprint(health_blueprint(redis), url_prefix="/health")
    client = app.test_client()
    wait_until(lambda: client.get("/health/ready").status_code == 200)
    answer = client.get("/health/ready").get_json()
    assert answer["live"] is True
    assert answer["ready"] is True
    assert answer["listener"]["connected"] is True
    assert answer["listener"]["subscriptions"] >= 2  # its inbox, and the handler's channel
    assert set(answer["messages"]) == {"handled", "failed", "expired", "dropped", "overloaded"}
    server.stop()
    wait_until(lambda: client.get("/health/ready").status_code == 503, timeout=20)
    down = client.get("/health/ready").get_json()
    assert down["ready"] is False
    assert down["listener"]["last_error"]
    assert client.get("/health/live").status_code == 200  # restarting the process would not bring Redis back
    server.start()
    wait_until(lambda: client.get("/health/ready").status_code == 200, timeout=20)
    assert client.get("/health/ready").get_json()["listener"]["reconnects"] >= 1
    with app.app_context():
        redis.broker.stop()


def test_the_worker_serves_health_on_a_port(start_worker: Callable[..., WorkerProcess]) -> None:
    port = free_port()
    worker = start_worker(
        "--router", "tests.apps.svc:backend", "--health-port", str(port), "--health-host", "127.0.0.1"
    )
    worker.wait_for_log(f"health on http://127.0.0.1:{port}/ready")
    status, ready = probe(f"http://127.0.0.1:{port}/ready")
    assert status == 200
    assert ready["ready"] is True
    assert ready["process"].startswith("worker@")
    assert probe(f"http://127.0.0.1:{port}/live")[0] == 200
    with pytest.raises(urllib.error.HTTPError, match="404"):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/anything-else", timeout=5)


def test_an_app_without_routes_is_live_once_probed(redis_url: str) -> None:
    """A caller-only web app has not started its broker before its first call: the probe starts it."""
    app = Flask("caller")
    app.config["REDIS"] = {"URL": redis_url, "PREFIX": "health"}
    redis = FlaskRedisSingle(app)
    app.register_blueprint(health_blueprint(redis), url_prefix="/health")
    client = app.test_client()
    wait_until(lambda: client.get("/health/ready").status_code == 200)
    assert client.get("/health/live").status_code == 200
    with app.app_context():
        redis.broker.stop()


def test_a_health_port_in_use_is_a_one_line_error(broker_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(broker_env, WORKER, APP, "--health-port", str(port), "--health-host", "127.0.0.1")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(f"Error: --health-port {port}: cannot serve on 127.0.0.1:")
