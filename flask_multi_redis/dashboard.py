"""A live page of the broker, for people: the live processes, the channels with their schemas, this process's
request rate and latency over the last ten minutes as a small plot, and its recent errors. One HTML file with
its script inline (no build step, no CDN: it works offline), which reads ``data`` (JSON) every two seconds.

``app.register_blueprint(dashboard_blueprint(redis), url_prefix="/redis")``. It shows what ``flask redis
workers`` and ``channels`` do, so mount it where only operators reach, or guard it with the blueprint's
``before_request``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import orjson
from flask import Blueprint, Response

from .broker.instruments import timed
from .broker.pool import text_of
from .errors import FlaskRedisError
from .health import health_of

if TYPE_CHECKING:
    from .broker.instruments import CallKind
    from .extension import RedisExtension

__all__ = ["RecentCalls", "dashboard_blueprint"]

#: Latencies kept per step for its percentiles; past them a step's count still grows.
SAMPLES = 512


@dataclass
class _Step:
    """The calls (or handler runs) that ended within one step of time."""

    count: int = 0
    errors: int = 0
    seconds: list[float] = field(default_factory=list)

    def add(self, seconds: float, failed: bool) -> None:
        self.count += 1
        self.errors += failed
        if len(self.seconds) < SAMPLES:
            self.seconds.append(seconds)

    def as_json(self) -> dict[str, Any]:
        ordered = sorted(self.seconds)
        return {
            "count": self.count,
            "errors": self.errors,
            "p50_ms": _ms(ordered, 0.5),
            "p99_ms": _ms(ordered, 0.99),
        }


def _ms(ordered: list[float], quantile: float) -> float | None:
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] * 1000, 3)


class RecentCalls:
    """An instrument (``broker.instrument``) that keeps, in steps of ``step`` seconds over the last ``window``,
    how many calls this process made and handlers it ran, how many failed and their p50 and p99 time; and its
    last ``keep`` errors (type and text, cut to 300 characters)."""

    def __init__(self, window: float = 600, step: float = 10, keep: int = 20) -> None:
        self.window, self.step = window, step
        self._steps: dict[tuple[str, int], _Step] = {}
        self.errors: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def call(self, kind: CallKind, channel: str, headers: dict[str, str]) -> AbstractContextManager[None]:
        return timed(lambda seconds, error: self._record("calls", kind, channel, seconds, error))

    def handle(self, kind: str, channel: str, headers: Mapping[str, str]) -> AbstractContextManager[None]:
        return timed(lambda seconds, error: self._record("handled", kind, channel, seconds, error))

    def _record(self, what: str, kind: str, channel: str, seconds: float, error: BaseException | None) -> None:
        now = time.time()
        with self._lock:
            key = (what, int(now // self.step))
            step = self._steps.get(key)
            if step is None:  # a new step begins: those that left the window go
                oldest = int((now - self.window) // self.step)
                for stale in [k for k in self._steps if k[1] < oldest]:
                    del self._steps[stale]
                step = self._steps[key] = _Step()
            step.add(seconds, error is not None)
            if error is not None:
                self.errors.appendleft(
                    {
                        "at": round(now, 3),
                        "what": what,
                        "kind": kind,
                        "channel": channel,
                        "type": type(error).__name__,
                        "message": text_of(error)[:300],
                    }
                )

    def series(self) -> dict[str, Any]:
        """Per step, oldest first (steps with nothing are left out): its start (unix seconds), and the calls'
        and handler runs' count, errors, p50 and p99."""
        oldest = int((time.time() - self.window) // self.step)  # steps kept since before a quiet spell are left out
        with self._lock:
            starts = sorted({index for _, index in self._steps if index >= oldest})
            points = [
                {
                    "t": index * self.step,
                    **{
                        what: self._steps[(what, index)].as_json()
                        for what in ("calls", "handled")
                        if (what, index) in self._steps
                    },
                }
                for index in starts
            ]
        return {"step": self.step, "window": self.window, "points": points}


def dashboard_data(extension: RedisExtension, recent: RecentCalls) -> dict[str, Any]:
    """What the page shows: this process's health, the live processes, the channels, the series and errors."""
    broker = extension.broker
    address, prefix = broker.where()
    health = health_of(broker)
    data: dict[str, Any] = {
        "address": address,
        "prefix": prefix,
        "now": time.time(),
        "health": {"live": health.live, "ready": health.ready, **health.report},
        "processes": None,
        "more": False,
        "unavailable": None,
    }
    try:
        processes, data["more"] = broker.process_page(200)
        data["processes"] = [process.summary() for process in processes]
    except FlaskRedisError as exc:
        data["unavailable"] = f"{type(exc).__name__}: {exc}"
    routes = sorted(broker.routes(), key=lambda route: (route.channel.name, route.kind))
    data["channels"] = [{**route.summary(), "types": route.channel.type_names()} for route in routes]
    data["series"] = recent.series()
    # with error_messages off, what a handler's exception says stays in the logs, not on a page either
    data["errors"] = [error if broker.error_messages else {**error, "message": ""} for error in recent.errors]
    return data


def dashboard_blueprint(
    extension: RedisExtension, recent: RecentCalls | None = None, name: str = "redis_dashboard"
) -> Blueprint:
    """The live page (``/``) and its data (``/data``) for ``extension``'s broker. ``recent`` is the instrument
    whose series it plots: by default a new one, installed on the broker."""
    if recent is None:
        recent = RecentCalls()
        extension.broker.instrument(recent)
    kept = recent
    page = files(__package__).joinpath("dashboard.html").read_bytes()
    blueprint = Blueprint(name, __name__)

    def show() -> Response:
        return Response(page, mimetype="text/html", headers={"Content-Security-Policy": _POLICY})

    def data() -> Response:
        body = orjson.dumps(dashboard_data(extension, kept))
        return Response(body, mimetype="application/json", headers={"Cache-Control": "no-store"})

    blueprint.add_url_rule("/", "page", show)
    blueprint.add_url_rule("/data", "data", data)
    return blueprint


#: The page loads nothing from anywhere else, and its own script only.
_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'"
)
