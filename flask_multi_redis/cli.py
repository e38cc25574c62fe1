"""The ``flask redis`` command group, named after the extension key (``flask cache`` for ``config_element="CACHE"``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click
import redis
from flask import current_app
from flask.cli import AppGroup

from .connection import failure_reason, topology_nodes
from .connection import ping as ping_server
from .errors import BrokerUnavailable

if TYPE_CHECKING:
    from .broker.registry import ProcessInfo
    from .extension import RedisExtension

__all__ = ["redis_group"]


def redis_group(ext: RedisExtension) -> click.Group:
    """A click group of commands that act on the databases of ``ext``."""
    from .worker.cli import run_worker, worker_options

    group = AppGroup(ext.extension_key, help=f"Redis databases of the {ext.config_element} configuration.")

    @group.command("ping")
    def ping() -> None:
        """Ping every configured database: address, server version and round-trip time."""
        failed = 0
        addresses = ext.addresses()
        width = max(len(name) for name in addresses)
        for name, address in addresses.items():
            try:
                server = ping_server(ext.getRedis(name))
            except redis.RedisError as exc:
                failed += 1
                click.echo(f"{name:<{width}}  {address}  unreachable: {failure_reason(exc)}", err=True)
                continue
            click.echo(f"{name:<{width}}  {address}  redis {server.version}  {server.round_trip_ms:.2f} ms")
            for node in topology_nodes(ext.getRedis(name)):
                click.echo(f"{'':<{width}}    {node.role:<8}  {node.address}  {node.state}")
        signed = [name for name in addresses if ext.signing_keys(name)]
        if not signed:
            click.echo(f"broker messages are not signed: set {ext.config_element}.SIGNING_KEY (see the README)")
        elif len(signed) < len(addresses):
            click.echo(f"broker messages are signed on {', '.join(signed)} only")
        else:
            click.echo("broker messages are signed")
        if failed:
            raise SystemExit(1)

    @group.command("worker")
    @worker_options
    def worker(**options: Any) -> None:
        """Serve this app's broker handlers (as flask-redis-worker does)."""
        run_worker(current_app._get_current_object(), **options)  # type: ignore[attr-defined]

    @group.command("workers")
    @click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True, help="Processes to list.")
    def workers(limit: int) -> None:
        """List the live processes (web workers and backend workers) from their heartbeats."""
        try:
            processes, more = ext.broker.process_page(limit)
        except BrokerUnavailable as exc:
            click.echo(f"Error: {exc}", err=True)
            raise SystemExit(1) from exc
        click.echo(format_processes(processes, more))

    return group


def format_processes(processes: list[ProcessInfo], more: bool = False) -> str:
    """The ``flask redis workers`` table (its fields were checked when read: nothing in it can break a
    terminal)."""
    rows = [("ROLE", "HOST", "PID", "UP", "HANDLED", "FAILED", "HANDLERS", "COMMANDS")]
    now = time.time()
    for p in processes:
        up = f"{now - p.started_at:.0f}s"
        handlers, commands = ",".join(p.handlers) or "-", ",".join(p.commands) or "-"
        rows.append(
            (p.sender.role, p.sender.host, str(p.sender.pid), up, str(p.handled), str(p.failed), handlers, commands)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.append(f"{len(processes)} live process(es)" + (", and more: raise --limit to list them" if more else ""))
    return "\n".join(lines)
