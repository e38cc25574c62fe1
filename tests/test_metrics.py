"""Prometheus metrics (the metrics extra) against real calls: counts and times by channel, kind and outcome,
the listener's state read at each scrape, bounded channel labels, /metrics in the web app and the worker."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from examples.local_redis import free_port
from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Channel, RemoteError
from flask_multi_redis.metrics import BrokerMetrics

from .processes import WorkerProcess

double = Channel("math.double", request=int, reply=int)
explode = Channel("math.explode", request=int, reply=int)
notice = Channel("news.notice", request=str, reply=str)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_calls_and_handler_runs_are_counted_and_timed(redis_url: str) -> None:
    app = Flask("web")
    app.config["REDIS"] = {"URL": redis_url, "PREFIX": "metrics"}
    redis = FlaskRedisSingle(app)
    metrics = BrokerMetrics(redis)
    app.register_blueprint(metrics.blueprint())
    redis.broker.handler(double)(lambda n: n * 2)
    redis.broker.command(notice)(lambda text: text.upper())

    def fail(n: int) -> int:
        raise ArithmeticError("no")

    redis.broker.handler(explode)(fail)
    with app.app_context():
        assert redis.broker.wait_ready(10)
        assert [redis.broker.request(double, n, timeout=5) for n in range(3)] == [0, 2, 4]
        with pytest.raises(RemoteError):
            redis.broker.request(explode, 1, timeout=5)
        assert redis.broker.broadcast(notice, "hi", gather=True, timeout=5)[0].value == "HI"
    answer = app.test_client().get("/metrics")
    assert answer.status_code == 200
    assert answer.content_type.startswith("text/plain; version=0.0.4")
    found = samples(answer.get_data(as_text=True))
    ok = (("channel", "math.double"), ("kind", "request"), ("outcome", "ok"))
    assert found[("flask_redis_calls_total", ok)] == 3
    remote = (("channel", "math.explode"), ("kind", "request"), ("outcome", "RemoteError"))
    assert found[("flask_redis_calls_total", remote)] == 1
    raised = (("channel", "math.explode"), ("kind", "handler"), ("outcome", "ArithmeticError"))
    assert found[("flask_redis_handler_runs_total", raised)] == 1
    gathered = (("channel", "news.notice"), ("kind", "gather"), ("outcome", "ok"))
    assert found[("flask_redis_calls_total", gathered)] == 1
    assert found[("flask_redis_call_seconds_count", (("channel", "math.double"), ("kind", "request")))] == 3
    assert found[("flask_redis_handler_seconds_count", (("channel", "math.double"), ("kind", "handler")))] == 3
    assert found[("flask_redis_listener_connected", ())] == 1
    assert found[("flask_redis_messages_total", (("outcome", "handled"),))] == 4  # 3 doubles and the notice
    assert found[("flask_redis_messages_total", (("outcome", "failed"),))] == 1
    with app.app_context():
        redis.broker.stop()


def test_channel_labels_are_bounded(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flask_multi_redis.metrics.MAX_CHANNELS", 2)
    metrics = BrokerMetrics(FlaskRedisSingle({"URL": redis_url}))
    assert [metrics.channel_label(name) for name in ("a", "b", "c", "a", "d")] == ["a", "b", "other", "a", "other"]


def test_the_worker_serves_metrics_beside_health(
    start_worker: Callable[..., WorkerProcess], broker_env: dict[str, str]
) -> None:
    port = free_port()
    broker_env["SVC_METRICS"] = "1"  # the worker's environment: svc.create_app then installs BrokerMetrics
    worker = start_worker(
        "--router", "tests.apps.svc:backend", "--health-port", str(port), "--health-host", "127.0.0.1"
    )
    worker.wait_for_log(f"health on http://127.0.0.1:{port}/ready")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    assert samples(text)[("flask_redis_listener_connected", ())] == 1
