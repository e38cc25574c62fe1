"""The worker's command line: ``flask-redis-worker module:app`` and ``flask redis worker``."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from importlib import import_module
from typing import Any

import click
import orjson
from flask import Flask

from flask_multi_redis.broker import Router
from flask_multi_redis.broker.process import start_explicitly

from .launch import GEVENT_MISSING
from .worker import Pool, Worker, WorkerError

__all__ = ["worker_main", "worker_options"]

LOG_LEVELS = ["debug", "info", "warning", "error"]


class JsonFormatter(logging.Formatter):
    """One JSON object per log line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def load_router(spec: str) -> Router:
    """``module:attribute`` to a Router; :class:`click.BadParameter` naming ``--router`` otherwise."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise click.BadParameter(f"{spec!r} is not module:attribute", param_hint="'--router'")
    try:
        router = getattr(import_module(module_name), attribute)
    except ImportError as exc:
        raise click.BadParameter(f"cannot import {module_name!r}: {exc}", param_hint="'--router'") from exc
    except AttributeError as exc:
        raise click.BadParameter(f"{module_name!r} has no {attribute!r}", param_hint="'--router'") from exc
    except Exception as exc:  # the module itself failed while importing
        reason = f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        raise click.BadParameter(reason, param_hint="'--router'") from exc
    if not isinstance(router, Router):
        raise click.BadParameter(f"{spec!r} is a {type(router).__name__}, not a Router", param_hint="'--router'")
    return router


def worker_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options shared by ``flask-redis-worker`` and ``flask redis worker``."""
    options = [
        click.option(
            "--router",
            "-r",
            "routers",
            multiple=True,
            metavar="MODULE:ROUTER",
            help="Also serve this Router (repeatable).",
        ),
        click.option(
            "--concurrency", "-c", type=click.IntRange(min=1), help="Handlers at once [8 threads / 100 greenlets]."
        ),
        click.option(
            "--pool",
            "-P",
            type=click.Choice(["threads", "gevent"]),
            default="threads",
            show_default=True,
            help="How handlers run.",
        ),
        click.option(
            "--grace",
            type=click.FloatRange(min=0),
            default=30.0,
            show_default=True,
            help="Seconds for handlers in flight at shutdown.",
        ),
        click.option(
            "--heartbeat",
            type=click.FloatRange(min=0.1, max=60),
            default=2.0,
            show_default=True,
            help="Seconds between registry heartbeats.",
        ),
        click.option(
            "--log-level", "-l", type=click.Choice(LOG_LEVELS, case_sensitive=False), default="info", show_default=True
        ),
        click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True),
        click.option(
            "--health-port",
            type=click.IntRange(min=0, max=65535),
            help="Serve /live and /ready (JSON, 200 or 503) over HTTP on this port (0: any free port).",
        ),
        click.option(
            "--health-host",
            default="0.0.0.0",  # noqa: S104 - probes come from outside the container
            show_default=True,
            help="The address the health server binds.",
        ),
        click.option(
            "--check",
            is_flag=True,
            help="Load everything and reach Redis once: exit 0 if fine, 1 with the reason if not.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def run_worker(
    app: Flask | Callable[[], Flask],
    routers: tuple[str, ...],
    concurrency: int | None,
    pool: Pool,
    grace: float,
    heartbeat: float,
    log_level: str,
    log_format: str,
    check: bool,
    health_port: int | None = None,
    health_host: str = "0.0.0.0",  # noqa: S104
) -> None:
    """Build the Worker from the options, then check it or run it; exits with its status."""
    setup_logging(log_level, log_format)
    loaded = [load_router(spec) for spec in routers]
    if pool == "gevent":
        try:
            import gevent  # noqa: F401 - the Worker patches with it
        except ImportError as exc:
            raise click.BadParameter(GEVENT_MISSING, param_hint="'--pool'") from exc
    try:
        worker = Worker(
            app,
            loaded,
            concurrency,
            pool,
            grace=grace,
            heartbeat=heartbeat,
            health_port=health_port,
            health_host=health_host,
        )
        if check:
            click.echo(f"ok: {worker.check()}")
            sys.exit(0)
        sys.exit(worker.run())
    except WorkerError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)


@click.command(name="flask-redis-worker", context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flask-multi-redis", prog_name="flask-redis-worker")
@click.argument("app", metavar="MODULE:APP")
@worker_options
def worker_command(app: str, **options: Any) -> None:
    """Serve the broker handlers of a Flask app: MODULE:APP names the app or its factory (MODULE:create_app())."""
    from flask.cli import NoAppException, locate_app, prepare_import

    start_explicitly()  # the app is created below: its broker must wait for the Worker
    module_name, _, app_name = app.partition(":")
    sys.path.insert(0, ".")
    try:
        found = locate_app(prepare_import(module_name), app_name or None)
    except NoAppException as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise click.BadParameter(lines[-1] if lines else "no app found", param_hint="'MODULE:APP'") from exc
    except Exception as exc:  # the app module itself failed while importing
        raise click.BadParameter(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}", param_hint="'MODULE:APP'"
        ) from exc
    assert found is not None
    run_worker(found, **options)


def worker_main() -> None:
    worker_command(prog_name="flask-redis-worker")
