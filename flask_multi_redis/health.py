"""Health for probes: one JSON report of this process's broker, with liveness (its listener runs: restarting the
process would not help otherwise) and readiness (connected, subscribed and, when it serves, registered: send it
traffic). A Flask blueprint serves it in the web app (``/live``, ``/ready``) and ``flask-redis-worker
--health-port`` in a worker; both answer 200, or 503 with the same report saying why.

Nothing in a report is secret: addresses have no password, errors are the reasons ``flask redis ping`` gives.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
from flask import Blueprint, Flask, Response

if TYPE_CHECKING:
    from .broker import Broker
    from .extension import RedisExtension

__all__ = ["Health", "HealthServer", "health_blueprint", "health_of", "serve_health"]

T = TypeVar("T")


@dataclass(frozen=True)
class Health:
    """A process's health: whether it is live and ready, and the figures behind both."""

    live: bool
    ready: bool
    report: dict[str, Any]

    def body(self) -> bytes:
        return orjson.dumps({"live": self.live, "ready": self.ready, **self.report})


def health_of(broker: Broker) -> Health:
    """The health of ``broker`` in this process (of the current app); it starts the broker if it has not (a
    process that has never called still answers calls, and a probe should see whether it could)."""
    broker.start()
    state = broker.health()
    listener = state.listener
    ready = listener.running and listener.connected and not state.draining and broker.wait_ready(0)
    age = None if listener.last_message_at is None else round(time.time() - listener.last_message_at, 3)
    report = {
        "process": str(state.sender),
        "listener": {
            "running": listener.running,
            "connected": listener.connected,
            "subscriptions": len(listener.subscriptions),
            "last_message_age_s": age,
            "received": listener.received,
            "reconnects": listener.reconnects,
            "last_error": listener.last_error,
        },
        "draining": state.draining,
        "handlers_in_flight": state.in_flight,
        "calls_waiting": state.waiting_calls,
        "messages": {
            name: getattr(state.counters, name) for name in ("handled", "failed", "expired", "dropped", "overloaded")
        },
    }
    return Health(live=listener.running, ready=ready, report=report)


def health_blueprint(extension: RedisExtension, name: str = "redis_health") -> Blueprint:
    """A blueprint with ``/live`` and ``/ready`` for ``extension``'s broker:
    ``app.register_blueprint(health_blueprint(redis), url_prefix="/health")``."""
    blueprint = Blueprint(name, __name__)

    def answer(which: str) -> Response:
        health = health_of(extension.broker)
        good = health.live if which == "live" else health.ready
        return Response(health.body(), status=200 if good else 503, mimetype="application/json")

    blueprint.add_url_rule("/live", "live", lambda: answer("live"))
    blueprint.add_url_rule("/ready", "ready", lambda: answer("ready"))
    return blueprint


class HealthServer:
    """``/live`` and ``/ready`` over plain HTTP on ``host:port``, for a process with no web server of its own
    (``flask-redis-worker --health-port``); ``report`` gives the health at each request."""

    def __init__(
        self,
        report: Callable[[], Health],
        port: int,
        host: str = "0.0.0.0",  # noqa: S104 - probes come from outside
        metrics: Callable[[], bytes] | None = None,
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                which = self.path.split("?", 1)[0].rstrip("/")
                if which == "/metrics" and metrics is not None:
                    self._send(200, metrics(), "text/plain; version=0.0.4; charset=utf-8")
                    return
                if which not in ("/live", "/ready"):
                    self.send_error(404, "only /live, /ready and, with metrics, /metrics")
                    return
                try:
                    health = report()
                except Exception as exc:  # no report at all: neither live nor ready, and why
                    why = {"live": False, "ready": False, "error": f"{type(exc).__name__}: {exc}"}
                    self._send(503, orjson.dumps(why), "application/json")
                    return
                good = health.live if which == "/live" else health.ready
                self._send(200 if good else 503, health.body(), "application/json")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # a probe every few seconds is not news

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-server", daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()


def serve_health(app: Flask, broker: Broker, port: int, host: str) -> HealthServer:
    """Start a :class:`HealthServer` reporting ``broker`` of ``app``, with ``/metrics`` when the broker has
    metrics (:class:`flask_multi_redis.metrics.BrokerMetrics`)."""
    found = [getattr(item, "exposition", None) for item in broker.instruments.items]
    exposition = next((method for method in found if callable(method)), None)
    metrics = None if exposition is None else _in_context(app, exposition)
    return HealthServer(_in_context(app, lambda: health_of(broker)), port, host, metrics).start()


def _in_context(app: Flask, function: Callable[[], T]) -> Callable[[], T]:
    def run() -> T:
        with app.app_context():
            return function()

    return run
