"""Worker: a backend process that serves the broker routes of a Flask app until it is told to stop."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from types import FrameType
from typing import Literal

import redis
from flask import Flask

from flask_multi_redis.broker import Broker, Router
from flask_multi_redis.broker.process import start_explicitly
from flask_multi_redis.connection import failure_reason, ping
from flask_multi_redis.errors import BrokerUnavailable, FlaskRedisError
from flask_multi_redis.extension import RedisExtension
from flask_multi_redis.health import HealthServer, serve_health

from .launch import GEVENT_MISSING

__all__ = ["Pool", "Worker", "WorkerError"]

log = logging.getLogger(__name__)

Pool = Literal["gevent", "threads"]
DEFAULT_CONCURRENCY: dict[str, int] = {"threads": 8, "gevent": 100}
#: How long the worker waits for Redis at start-up before it gives up (exit 1).
STARTUP_TIMEOUT = 30.0


class WorkerError(FlaskRedisError):
    """The worker cannot run: no Redis extension on the app, an unreachable Redis, a broken router."""


class Worker:
    """Serves the broker routes of a Flask app (and of ``routers``) in this process, handlers in its app context.

    :param app_or_factory: the Flask app, or a function that creates it.
    :param routers: routers to serve besides the routes registered on the app's broker.
    :param concurrency: handlers run at once (default 8 threads, or 100 greenlets).
    :param pool: ``threads``, or ``gevent`` (the process is monkey-patched; ``flask-redis-worker`` patches before
        it imports anything else, a program that builds a Worker itself should patch first).
    :param extension: the key of the Redis extension in ``app.extensions`` (default: the only one).
    :param grace: seconds that handlers in flight get to finish once a stop is asked for.
    :param heartbeat: seconds between registry heartbeats (the entry expires after three).
    :param health_port: serve ``/live`` and ``/ready`` over HTTP on this port while running (0: any free port,
        logged); None: not at all. ``health_host`` is the address it binds.
    """

    def __init__(
        self,
        app_or_factory: Flask | Callable[[], Flask],
        routers: Sequence[Router] = (),
        concurrency: int | None = None,
        pool: Pool = "threads",
        *,
        extension: str | None = None,
        grace: float = 30.0,
        heartbeat: float = 2.0,
        health_port: int | None = None,
        health_host: str = "0.0.0.0",  # noqa: S104 - probes come from outside the container
    ) -> None:
        if pool not in DEFAULT_CONCURRENCY:
            raise ValueError(f"pool must be 'threads' or 'gevent', not {pool!r}")
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        start_explicitly()  # an app created from here on must not start its broker on its own
        self._app_or_factory = app_or_factory
        self.routers = list(routers)
        self.pool = pool
        self.concurrency = concurrency or DEFAULT_CONCURRENCY[pool]
        self.extension_key = extension
        self.grace = grace
        self.heartbeat = heartbeat
        self.health_port = health_port
        self.health_host = health_host
        self._stop = threading.Event()
        self._signals = 0
        if pool == "gevent":
            _ensure_patched()

    @cached_property
    def app(self) -> Flask:
        """The app (created by the factory on first use)."""
        if isinstance(self._app_or_factory, Flask):
            return self._app_or_factory
        app = self._app_or_factory()
        if not isinstance(app, Flask):
            raise WorkerError(f"the factory returned a {type(app).__name__}, not a Flask app")
        return app

    @cached_property
    def extension(self) -> RedisExtension:
        """The app's Redis extension whose broker this worker serves."""
        found = {key: ext for key, ext in self.app.extensions.items() if isinstance(ext, RedisExtension)}
        if self.extension_key is not None:
            if self.extension_key not in found:
                raise WorkerError(f"app {self.app.name!r} has no Redis extension {self.extension_key!r}")
            return found[self.extension_key]
        if len(found) != 1:
            what = "no Redis extension" if not found else f"several Redis extensions ({', '.join(sorted(found))})"
            raise WorkerError(f"app {self.app.name!r} has {what}; initialise one, or name it with extension=")
        return next(iter(found.values()))

    def check(self) -> str:
        """Load the app and routers and reach Redis once; a one-line summary, or :class:`WorkerError`."""
        broker = self._prepare()
        with self.app.app_context():
            name = self.extension.databases[0] if broker.database is None else str(broker.database)
            address = self.extension.addresses().get(name, name)
            try:  # a cluster's session connects when it is made, to read the slot map
                ping(broker.runtime().session)
            except redis.RedisError as exc:
                raise WorkerError(f"Redis at {address} is unreachable: {failure_reason(exc)}") from exc
            address = self.extension.addresses()[broker.runtime().session.name]
        handlers = broker.channel_names("handler")
        return f"app {self.app.name!r}, Redis at {address}, handlers: {', '.join(handlers) or 'none'}"

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT (or :meth:`stop`), then drain; 0 when every handler finished in time.

        A second signal ends the process at once.
        """
        started = time.monotonic()
        broker = self._prepare()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, self._on_signal)
        health = self._serve_health(broker)  # before Redis answers: a probe then hears why it is not ready
        try:
            return self._serve(broker, started)
        finally:
            if health is not None:
                health.stop()

    def _serve_health(self, broker: Broker) -> HealthServer | None:
        if self.health_port is None:
            return None
        try:
            server = serve_health(self.app, broker, self.health_port, self.health_host)
        except OSError as exc:
            raise WorkerError(f"--health-port {self.health_port}: cannot serve on {self.health_host}: {exc}") from exc
        log.info("health on http://%s:%d/ready and /live", self.health_host, server.port)
        return server

    def _serve(self, broker: Broker, started: float) -> int:
        with self.app.app_context():
            told = False
            while True:  # a cluster is read before anything is built: one that does not answer yet is waited for
                try:
                    runtime = broker.start()
                    break
                except BrokerUnavailable as exc:
                    if not told:  # one line, as the listener's for a server that is down
                        log.error("worker cannot connect to %s; trying again for %.0f s", exc, STARTUP_TIMEOUT)
                        told = True
                    if self._stop.wait(0.25):
                        return 0
                    if time.monotonic() - started > STARTUP_TIMEOUT:
                        raise WorkerError(f"{exc} (for {STARTUP_TIMEOUT:.0f} s)") from exc
            while not runtime.wait_ready(0.25):  # a SIGTERM while Redis is unreachable still ends the worker
                if self._stop.is_set():
                    broker.stop(timeout=5)
                    return 0
                if time.monotonic() - started > STARTUP_TIMEOUT:
                    broker.stop(timeout=5)
                    address = self.extension.addresses()[runtime.session.name]
                    failed = runtime.listener.last_error
                    reason = f": {failure_reason(failed)}" if failed is not None else ""
                    raise WorkerError(f"Redis at {address} did not answer within {STARTUP_TIMEOUT:.0f} s{reason}")
            info = runtime.info()
            log.info(
                "worker %s ready: pool=%s concurrency=%d handlers=%s commands=%s",
                runtime.sender,
                self.pool,
                self.concurrency,
                ",".join(info.handlers) or "-",
                ",".join(info.commands) or "-",
            )
            self._stop.wait()
            drained = runtime.drain(
                self.grace,
                lambda: log.info("worker %s stopping: up to %.1f s for handlers in flight", runtime.sender, self.grace),
            )
            stopped = broker.stop(timeout=5)
        if not drained:
            log.error("worker %s: handlers still running after %.1f s; exiting", runtime.sender, self.grace)
            return 1
        if not stopped:
            log.error("worker %s: its broker did not stop within 5 s; exiting", runtime.sender)
            return 1
        log.info("worker %s stopped", runtime.sender)
        return 0

    def stop(self) -> None:
        """Ask :meth:`run` to drain and return (what SIGTERM does)."""
        self._stop.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second signal (%s): exiting at once", signal.Signals(signum).name)
            os._exit(1)
        self.stop()

    def _prepare(self) -> Broker:
        broker = self.extension.broker
        with self.app.app_context():  # a runtime the app started as a web process is stopped and made anew
            broker.configure(role="worker", concurrency=self.concurrency, heartbeat_interval=self.heartbeat)
        for router in self.routers:
            if not broker.includes(router):
                broker.include_router(router)
        return broker


def _ensure_patched() -> None:
    try:
        from gevent import monkey
    except ImportError as exc:
        raise WorkerError(GEVENT_MISSING) from exc
    if not monkey.is_module_patched("socket"):
        log.warning("the gevent pool needs a monkey-patched process: patching now; patch before other imports")
        monkey.patch_all()
