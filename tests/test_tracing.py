"""OpenTelemetry traces (the otel extra), with the SDK's in-memory exporter: a call's span and the handler's,
in another thread and connection, are one trace because the trace context travels in the envelope's headers."""

from __future__ import annotations

import pytest
from flask import Flask
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Channel, RemoteError
from flask_multi_redis.tracing import BrokerTracing

from .waiting import wait_until

double = Channel("math.double", request=int, reply=int)
explode = Channel("math.explode", request=int, reply=int)
notice = Channel("news.notice", request=str, reply=str)


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    return next(span for span in spans if span.name == name)


def test_one_trace_from_the_call_to_the_handler_and_back(redis_url: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = Flask("web")
    app.config["REDIS"] = {"URL": redis_url, "PREFIX": "traced"}
    redis = FlaskRedisSingle(app)
    BrokerTracing(redis, tracer_provider=provider)
    redis.broker.handler(double)(lambda n: n * 2)
    redis.broker.command(notice)(lambda text: text)

    def fail(n: int) -> int:
        raise ArithmeticError("no")

    redis.broker.handler(explode)(fail)
    with app.app_context():
        assert redis.broker.wait_ready(10)
        assert redis.broker.request(double, 21, timeout=5) == 42
        with pytest.raises(RemoteError):
            redis.broker.request(explode, 1, timeout=5)
        assert redis.broker.publish(notice, "hello") == 1
        wait_until(lambda: len(exporter.get_finished_spans()) == 6)
        redis.broker.stop()
    spans = exporter.get_finished_spans()
    send, process = by_name(spans, "send math.double"), by_name(spans, "process math.double")
    assert (send.kind, process.kind) == (SpanKind.CLIENT, SpanKind.SERVER)
    assert send.context is not None
    assert process.context is not None
    assert process.parent is not None
    assert process.context.trace_id == send.context.trace_id
    assert process.parent.span_id == send.context.span_id  # through Redis: another thread, no shared context
    assert process.attributes is not None
    assert process.attributes["messaging.destination.name"] == "math.double"
    assert process.attributes["messaging.operation.type"] == "process"
    failed = by_name(spans, "process math.explode")
    assert failed.status.status_code == StatusCode.ERROR
    assert [event.name for event in failed.events] == ["exception"]
    assert by_name(spans, "send math.explode").status.status_code == StatusCode.ERROR
    published, ran = by_name(spans, "send news.notice"), by_name(spans, "process news.notice")
    assert (published.kind, ran.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert ran.parent is not None
    assert published.context is not None
    assert ran.parent.span_id == published.context.span_id
