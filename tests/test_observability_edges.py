"""Metrics, traces, the live page and the instruments' seam at their edges: a reply that does not fit its type,
an exception with no text, a quiet spell, error_messages off, an instrument that raises, the README's labels."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import pytest
from flask import Flask
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client.parser import text_string_to_metric_families

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Channel, RemoteError
from flask_multi_redis.dashboard import RecentCalls, dashboard_blueprint
from flask_multi_redis.metrics import BrokerMetrics
from flask_multi_redis.tracing import BrokerTracing

from .conftest import ROOT
from .test_metrics import samples
from .waiting import wait_until

wrong = Channel("observed.wrong-reply", request=int, reply=int)


@pytest.fixture
def web(redis_url: str) -> Iterator[tuple[Flask, FlaskRedisSingle]]:
    app = Flask("observed")
    app.config["REDIS"] = {"URL": redis_url, "PREFIX": "observed"}
    ext = FlaskRedisSingle(app)
    yield app, ext
    with app.app_context():
        ext.broker.stop()


def serve_wrong_reply(ext: FlaskRedisSingle) -> None:
    """A handler that returns a reply its channel's type refuses: the run fails (the caller gets an error)."""
    ext.broker.handler(wrong)(lambda n: "not an int")


def call_wrong_reply(app: Flask, ext: FlaskRedisSingle) -> None:
    with app.app_context():
        assert ext.broker.wait_ready(10)
        with pytest.raises(RemoteError) as raised:
            ext.broker.request(wrong, 1, timeout=5)
        assert raised.value.remote_type == "InvalidMessage"
        wait_until(lambda: ext.broker.health().counters.failed == 1)


# --- a handler run that fails after its function returned is seen as ok ---------------------------------------


def test_metrics_count_a_handler_whose_reply_does_not_fit_as_failed(web: tuple[Flask, FlaskRedisSingle]) -> None:
    """A handler whose reply does not fit its channel's type failed (its caller gets an InvalidMessage error): the
    instruments wrap the reply's validation too, and flask_redis_handler_runs_total says so."""
    app, ext = web
    metrics = BrokerMetrics(ext)
    serve_wrong_reply(ext)
    call_wrong_reply(app, ext)
    found = samples(metrics.exposition().decode())
    runs = {labels: value for (name, labels), value in found.items() if name == "flask_redis_handler_runs_total"}
    assert found[("flask_redis_messages_total", (("outcome", "failed"),))] == 1
    ok = (("channel", wrong.name), ("kind", "handler"), ("outcome", "ok"))
    assert runs.get(ok, 0) == 0, runs


def test_the_span_of_a_handler_whose_reply_does_not_fit_is_an_error(web: tuple[Flask, FlaskRedisSingle]) -> None:
    """Same case: the ``process`` span ends as an error, as the caller's ``send`` span does."""
    app, ext = web
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    BrokerTracing(ext, tracer_provider=provider)
    serve_wrong_reply(ext)
    call_wrong_reply(app, ext)
    wait_until(lambda: len(exporter.get_finished_spans()) == 2)
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert spans[f"send {wrong.name}"].status.status_code == StatusCode.ERROR
    assert spans[f"process {wrong.name}"].status.status_code == StatusCode.ERROR


def test_the_dashboard_counts_a_handler_whose_reply_does_not_fit_as_failed(
    web: tuple[Flask, FlaskRedisSingle],
) -> None:
    """Same case: the page's handler-run series shows the error, and its recent errors list the run."""
    app, ext = web
    app.register_blueprint(dashboard_blueprint(ext), url_prefix="/redis")
    serve_wrong_reply(ext)
    call_wrong_reply(app, ext)
    data = app.test_client().get("/redis/data").get_json()
    handled = [point["handled"] for point in data["series"]["points"] if "handled" in point]
    assert sum(step["count"] for step in handled) == 1
    assert sum(step["errors"] for step in handled) == 1
    assert sorted(error["what"] for error in data["errors"]) == ["calls", "handled"]


# --- the live page's instrument breaks a handler's error ------------------------------------------------------


class Unprintable(Exception):
    """An exception whose ``str()`` raises (as some libraries' do): the broker answers it all the same."""

    def __str__(self) -> str:
        raise RuntimeError("no text for this one")


unprintable = Channel("observed.unprintable", request=int, reply=int)


def test_the_dashboard_instrument_does_not_change_a_handler_s_error(web: tuple[Flask, FlaskRedisSingle]) -> None:
    """An exception whose ``str()`` raises: with the page mounted, its instrument keeps the error without
    replacing it, and the caller is told ``Unprintable``."""
    app, ext = web
    app.register_blueprint(dashboard_blueprint(ext), url_prefix="/redis")

    @ext.broker.handler(unprintable)
    def fail(_: int) -> int:
        raise Unprintable

    with app.app_context():
        assert ext.broker.wait_ready(10)
        with pytest.raises(RemoteError) as raised:
            ext.broker.request(unprintable, 1, timeout=5)
    assert raised.value.remote_type == "Unprintable"
    data = app.test_client().get("/redis/data").get_json()
    assert "Unprintable" in [error["type"] for error in data["errors"] if error["what"] == "handled"]


# --- the live page's series keeps what left its window ----------------------------------------------------------


def test_the_series_leaves_out_steps_older_than_the_window(web: tuple[Flask, FlaskRedisSingle]) -> None:
    """After a quiet spell the page's series holds no step from before its window (old steps were dropped only
    when a new one began)."""
    app, ext = web
    recent = RecentCalls(window=2, step=1)
    ext.broker.instrument(recent)
    notice = Channel("observed.notice", request=str)
    with app.app_context():
        ext.broker.publish(notice, "hello")
    assert len(recent.series()["points"]) == 1
    ended = time.time()
    wait_until(lambda: time.time() > ended + recent.window + 2 * recent.step, timeout=10)
    starts = [point["t"] for point in recent.series()["points"]]
    assert all(start >= time.time() - recent.window - recent.step for start in starts), starts


# --- the live page shows a handler's exception text that error_messages=False keeps from callers ----------------

secretive = Channel("observed.secretive", request=dict, reply=dict)


def test_the_dashboard_keeps_a_handler_s_text_out_when_error_messages_are_off(
    web: tuple[Flask, FlaskRedisSingle],
) -> None:
    """README: ``broker.error_messages = False`` keeps what a handler's exception says in the logs: the page's JSON
    (``/data``) lists the error by its type only."""
    app, ext = web
    ext.broker.error_messages = False
    app.register_blueprint(dashboard_blueprint(ext), url_prefix="/redis")

    @ext.broker.handler(secretive)
    def refuse(message: dict[str, object]) -> dict[str, object]:
        raise ValueError(f"card {message['card']} refused")

    with app.app_context():
        assert ext.broker.wait_ready(10)
        with pytest.raises(RemoteError) as raised:
            ext.broker.request(secretive, {"card": "4111-1111-1111-1111"}, timeout=5)
    assert "4111" not in raised.value.remote_message  # the caller is kept from it, as documented
    body = app.test_client().get("/redis/data").get_data(as_text=True)
    assert "ValueError" in body
    assert "4111-1111-1111-1111" not in body


# --- an instrument that raises breaks the work it watches ---------------------------------------------------------


class Broken:
    """An instrument whose report fails (a bug in an exporter, say) after the work it watched succeeded."""

    @contextmanager
    def call(self, kind: str, channel: str, headers: dict[str, str]) -> Iterator[None]:
        yield  # the calls' side is fine: only the handler runs' report fails

    @contextmanager
    def handle(self, kind: str, channel: str, headers: Mapping[str, str]) -> Iterator[None]:
        yield
        raise RuntimeError("instrument failed")


double = Channel("observed.double", request=int, reply=int)


def test_an_instrument_that_raises_does_not_break_a_handler_run(web: tuple[Flask, FlaskRedisSingle]) -> None:
    """An instrument that raises as a handler run ends is logged and left out: the run succeeded, and its caller
    gets the reply."""
    app, ext = web
    ext.broker.handler(double)(lambda n: n * 2)
    with app.app_context():
        assert ext.broker.wait_ready(10)
        assert ext.broker.request(double, 21, timeout=5) == 42
        ext.broker.instrument(Broken())
        outcome: object
        try:
            outcome = ext.broker.request(double, 21, timeout=5)
        except Exception as exc:
            outcome = exc
    assert outcome == 42, repr(outcome)


# --- the README's table of metrics ----------------------------------------------------------------------------------


def test_every_metric_has_the_labels_the_readme_table_gives(web: tuple[Flask, FlaskRedisSingle]) -> None:
    """README's metrics table names each metric's labels: the scraped samples have exactly those."""
    app, ext = web
    metrics = BrokerMetrics(ext)
    ext.broker.handler(double)(lambda n: n * 2)
    with app.app_context():
        assert ext.broker.wait_ready(10)
        assert ext.broker.request(double, 1, timeout=5) == 2
    scraped: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            scraped.setdefault(sample.name.removesuffix("_count"), set()).update(sample.labels)
    table = (ROOT / "README.md").read_text()
    for name in (
        "flask_redis_calls_total",
        "flask_redis_call_seconds",
        "flask_redis_handler_runs_total",
        "flask_redis_handler_seconds",
    ):
        row = next(line for line in table.splitlines() if line.startswith(f"| `{name}` |"))
        documented = {label.strip() for label in re.sub(r"\([^)]*\)", "", row.split("|")[2]).split(",")}
        assert scraped[name] - {"le"} == documented, (name, row)
