"""Prometheus metrics of the broker (the ``metrics`` extra: ``pip install '.[metrics]'``).

``BrokerMetrics(ext)`` counts and times every call this process makes and every handler it runs, by channel,
kind and outcome (``ok`` or the exception's type), and reads the listener's state at each scrape (connected,
reconnects, messages received, dropped, expired, refused as overloaded, handlers in flight, calls waiting).
``metrics.blueprint()`` serves ``/metrics`` in the web app; ``flask-redis-worker --health-port`` serves it
beside ``/live`` and ``/ready``.

Label sets are bounded: channels are named as they are for the first :data:`MAX_CHANNELS` seen, and ``other``
after that, so a caller that names channels from user input cannot grow the series without end.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, current_app, has_app_context

try:
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError("flask_multi_redis.metrics needs prometheus-client: pip install '.[metrics]'") from exc

from .broker.instruments import outcome, timed

if TYPE_CHECKING:
    from .broker.instruments import CallKind
    from .extension import RedisExtension

__all__ = ["MAX_CHANNELS", "BrokerMetrics"]

#: Channels named in labels; beyond them, ``other``.
MAX_CHANNELS = 200

#: Seconds: the buckets of the latency histograms, from 100 us to 30 s.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class BrokerMetrics:
    """The metrics of ``extension``'s broker, in ``registry`` (a new one by default: give
    ``prometheus_client.REGISTRY`` to have them beside your other metrics)."""

    def __init__(self, extension: RedisExtension, registry: CollectorRegistry | None = None) -> None:
        self.extension = extension
        self.registry = CollectorRegistry() if registry is None else registry
        self._known: set[str] = set()
        self._lock = threading.Lock()
        self.calls = Counter(
            "flask_redis_calls", "Calls made by this process.", ["channel", "kind", "outcome"], registry=self.registry
        )
        self.call_seconds = Histogram(
            "flask_redis_call_seconds",
            "Time from a call's start to its reply (or error).",
            ["channel", "kind"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.handled = Counter(
            "flask_redis_handler_runs",
            "Handler and command runs in this process.",
            ["channel", "kind", "outcome"],
            registry=self.registry,
        )
        self.handler_seconds = Histogram(
            "flask_redis_handler_seconds",
            "Time a handler or command ran.",
            ["channel", "kind"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StateCollector(self))
        extension.broker.instrument(self)

    def channel_label(self, channel: str) -> str:
        """``channel``, or ``other`` once :data:`MAX_CHANNELS` others have been named."""
        if channel in self._known:
            return channel
        with self._lock:
            if len(self._known) < MAX_CHANNELS:
                self._known.add(channel)
                return channel
        return "other"

    @contextmanager
    def call(self, kind: CallKind, channel: str, headers: dict[str, str]) -> Iterator[None]:
        with self._timed(self.calls, self.call_seconds, kind, channel):
            yield

    @contextmanager
    def handle(self, kind: str, channel: str, headers: Mapping[str, str]) -> Iterator[None]:
        with self._timed(self.handled, self.handler_seconds, kind, channel):
            yield

    @contextmanager
    def _timed(self, count: Counter, seconds: Histogram, kind: str, channel: str) -> Iterator[None]:
        label = self.channel_label(channel)

        def observe(spent: float, error: BaseException | None) -> None:
            seconds.labels(label, kind).observe(spent)
            count.labels(label, kind, outcome(error)).inc()

        with timed(observe):
            yield

    def exposition(self) -> bytes:
        """The metrics in Prometheus's text format."""
        return generate_latest(self.registry)

    def blueprint(self, name: str = "redis_metrics") -> Blueprint:
        """A blueprint serving ``/metrics``: ``app.register_blueprint(metrics.blueprint())``."""
        blueprint = Blueprint(name, __name__)
        blueprint.add_url_rule("/metrics", "metrics", lambda: Response(self.exposition(), mimetype=CONTENT_TYPE))
        return blueprint


class _StateCollector(Collector):
    """Reads the broker's state of the current app (or of the only one) at each scrape."""

    def __init__(self, metrics: BrokerMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Any]:
        return []  # so that registering does not collect (which would start the broker too early)

    def collect(self) -> Iterator[Any]:
        extension = self._metrics.extension
        app = current_app._get_current_object() if has_app_context() else _only(extension.apps)  # type: ignore[attr-defined]
        if app is None:
            return
        with app.app_context():
            health = extension.broker.health()
        listener, counters = health.listener, health.counters
        yield GaugeMetricFamily(
            "flask_redis_listener_connected", "1 while the listener is connected.", value=int(listener.connected)
        )
        yield CounterMetricFamily(
            "flask_redis_listener_reconnects", "Reconnections of the listener.", value=listener.reconnects
        )
        yield CounterMetricFamily(
            "flask_redis_messages_received", "Messages the listener received.", value=listener.received
        )
        received = CounterMetricFamily(
            "flask_redis_messages", "What became of the messages received, by outcome.", labels=["outcome"]
        )
        for fate in ("handled", "failed", "expired", "dropped", "overloaded"):
            received.add_metric([fate], getattr(counters, fate))
        yield received
        yield GaugeMetricFamily("flask_redis_handlers_in_flight", "Handlers running or queued.", value=health.in_flight)
        yield GaugeMetricFamily("flask_redis_calls_waiting", "Calls waiting for replies.", value=health.waiting_calls)


def _only(apps: list[Flask]) -> Flask | None:
    return apps[0] if len(apps) == 1 else None
