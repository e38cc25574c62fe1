"""The ``flask redis`` command group, named after the extension key (``flask cache`` for ``config_element="CACHE"``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

import click
import orjson
import redis
from flask import current_app
from flask.cli import AppGroup
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from .asyncapi import asyncapi_document
from .broker import Channel
from .connection import failure_reason, topology_nodes
from .connection import ping as ping_server
from .errors import BrokerUnavailable, FlaskRedisError

if TYPE_CHECKING:
    from .broker import Reply
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
    @click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
    def workers(limit: int, as_json: bool) -> None:
        """List the live processes (web workers and backend workers) from their heartbeats."""
        address, prefix = ext.broker.where()
        try:
            processes, more = ext.broker.process_page(limit)
        except BrokerUnavailable as exc:
            click.echo(f"Error: Redis at {address} (prefix {prefix!r}): {exc}", err=True)
            raise SystemExit(1) from exc
        if as_json:
            listed = [process.summary() for process in processes]
            click.echo(orjson.dumps({"prefix": prefix, "processes": listed, "more": more}).decode())
        else:
            click.echo(format_processes(processes, more, prefix))

    @group.command("channels")
    @click.option("--json", "as_json", is_flag=True, help="With each channel's request and reply JSON Schema.")
    def channels(as_json: bool) -> None:
        """List the channels this app serves (its broker and the routers it includes), with their kind
        (command: every process runs it; handler: one does) and their request and reply types."""
        routes = sorted(ext.broker.routes(), key=lambda route: (route.channel.name, route.kind))
        if as_json:
            listed = [route.summary() for route in routes]
            click.echo(orjson.dumps(listed).decode())
            return
        rows = [("CHANNEL", "KIND", "REQUEST", "REPLY")]
        rows += [(r.channel.name, r.kind, *r.channel.type_names()) for r in routes]
        click.echo(_table(rows))
        click.echo(f"{len(routes)} channel(s)")

    @group.command("asyncapi")
    @click.option("--title", default="", help="The document's title (default: the app's name).")
    @click.option("--version", "api_version", default="1", show_default=True, help="The version of your API.")
    @click.option("-o", "--output", type=click.File("wb"), default="-", help="Where to write it (default: stdout).")
    def asyncapi(title: str, api_version: str, output: BinaryIO) -> None:
        """Write an AsyncAPI 3.0 document (JSON) of the channels this app serves, their messages and types."""
        try:
            document = asyncapi_document(ext, title=title, version=api_version)
        except FlaskRedisError as exc:
            _fail(exc)
        output.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")

    @group.command("call")
    @click.argument("channel")
    @click.argument("message", default="{}")
    @click.option("--timeout", type=click.FloatRange(min=0, max=300), default=5.0, show_default=True)
    @click.option("--broadcast", is_flag=True, help="Run the channel's command everywhere and gather the replies.")
    def call(channel: str, message: str, timeout: float, broadcast: bool) -> None:
        """Send MESSAGE (JSON) on CHANNEL and print the reply (or, with --broadcast, every process's), as JSON.
        A channel this app serves is checked against its types."""
        if not timeout <= ext.broker.max_timeout:  # NaN too, which click's range lets through
            raise click.BadParameter(
                f"must be from 0 to this app's max_timeout ({ext.broker.max_timeout:g} s)", param_hint="'--timeout'"
            )
        try:
            body = orjson.loads(message)
        except orjson.JSONDecodeError as exc:
            raise click.BadParameter(f"is not JSON: {exc}", param_hint="'MESSAGE'") from exc
        kind = "command" if broadcast else "handler"
        route = next((r for r in ext.broker.routes() if r.channel.name == channel and r.kind == kind), None)
        typed = route.channel if route is not None else _untyped(channel)
        try:
            if broadcast:
                replies = ext.broker.broadcast(typed, body, gather=True, timeout=timeout)
                click.echo(orjson.dumps([_reply_json(reply) for reply in replies], default=_plain).decode())
            else:
                click.echo(orjson.dumps(ext.broker.request(typed, body, timeout=timeout), default=_plain).decode())
        except FlaskRedisError as exc:
            _fail(exc)

    def _fail(exc: FlaskRedisError) -> NoReturn:
        """One line on stderr saying what failed and where (password hidden), and exit 1."""
        address, prefix = ext.broker.where()
        click.echo(f"Error: {type(exc).__name__}: {exc} (Redis at {address}, prefix {prefix!r})", err=True)
        raise SystemExit(1) from exc

    return group


def _untyped(name: str) -> Channel[Any, Any]:
    try:
        return Channel(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'CHANNEL'") from exc


def _plain(value: object) -> Any:
    """What orjson cannot write itself (a pydantic model, a set, bytes, a Decimal), as pydantic writes it."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return to_jsonable_python(value)


def _reply_json(reply: Reply[Any]) -> dict[str, Any]:
    error = None if reply.error is None else f"{type(reply.error).__name__}: {reply.error}"
    return {
        "sender": None if reply.sender is None else str(reply.sender),
        "ok": reply.ok,
        "value": reply.value,
        "error": error,
    }


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def format_processes(processes: list[ProcessInfo], more: bool = False, prefix: str | None = None) -> str:
    """The ``flask redis workers`` table (its fields were checked when read: nothing in it can break a
    terminal)."""
    rows: list[tuple[str, ...]] = [("ROLE", "HOST", "PID", "UP", "HANDLED", "FAILED", "HANDLERS", "COMMANDS")]
    now = time.time()
    for p in processes:
        up = f"{now - p.started_at:.0f}s"
        handlers, commands = ",".join(p.handlers) or "-", ",".join(p.commands) or "-"
        rows.append(
            (p.sender.role, p.sender.host, str(p.sender.pid), up, str(p.handled), str(p.failed), handlers, commands)
        )
    where = "" if prefix is None else f" with the prefix {prefix!r}"
    summary = f"{len(processes)} live process(es){where}" + (", and more: raise --limit to list them" if more else "")
    return _table(rows) + "\n" + summary
