"""OpenTelemetry traces of the broker (the ``otel`` extra: ``pip install '.[otel]'``, and an SDK of your choice).

``BrokerTracing(ext)`` makes a span for every call this process makes (``send`` a request, a broadcast, a
gather) and for every handler it runs (``process``), and carries the W3C trace context (``traceparent``,
``tracestate``) in the envelope's ``headers`` (PROTOCOL.md), so that one trace goes from the web process to the
worker that handles the request and back: the handler's span is a child of the call's.

The spans follow OpenTelemetry's messaging conventions: ``messaging.system`` ``redis``,
``messaging.destination.name`` the channel, ``messaging.operation.type`` ``send`` or ``process``; a call that
ends with an exception records it and has the status ERROR.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError("flask_multi_redis.tracing needs opentelemetry-api: pip install '.[otel]'") from exc

if TYPE_CHECKING:
    from .broker.instruments import CallKind
    from .extension import RedisExtension

__all__ = ["BrokerTracing"]

_CALL_KINDS = {"request": SpanKind.CLIENT, "gather": SpanKind.CLIENT, "broadcast": SpanKind.PRODUCER}
_HANDLER_KINDS = {"handler": SpanKind.SERVER, "command": SpanKind.CONSUMER}


class BrokerTracing:
    """Traces ``extension``'s broker with ``tracer_provider`` (by default the global one)."""

    def __init__(self, extension: RedisExtension, tracer_provider: trace.TracerProvider | None = None) -> None:
        self.tracer = trace.get_tracer("flask_multi_redis", tracer_provider=tracer_provider)
        extension.broker.instrument(self)

    @contextmanager
    def call(self, kind: CallKind, channel: str, headers: dict[str, str]) -> Iterator[None]:
        attributes = _attributes(channel, "send", kind)
        with self.tracer.start_as_current_span(f"send {channel}", kind=_CALL_KINDS[kind], attributes=attributes):
            propagate.inject(headers)  # traceparent (and tracestate) for the envelopes sent inside
            yield

    @contextmanager
    def handle(self, kind: str, channel: str, headers: Mapping[str, str]) -> Iterator[None]:
        parent = propagate.extract(dict(headers)) if headers else None
        span_kind = _HANDLER_KINDS.get(kind, SpanKind.CONSUMER)
        with self.tracer.start_as_current_span(
            f"process {channel}", context=parent, kind=span_kind, attributes=_attributes(channel, "process", kind)
        ):
            yield  # an exception is recorded on the span, whose status is then ERROR


def _attributes(channel: str, operation: str, kind: str) -> dict[str, Any]:
    return {
        "messaging.system": "redis",
        "messaging.destination.name": channel,
        "messaging.operation.type": operation,
        "flask_multi_redis.kind": kind,
    }
