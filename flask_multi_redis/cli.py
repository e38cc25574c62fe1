"""The ``flask redis`` command group, named after the extension key (``flask cache`` for ``config_element="CACHE"``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click
import redis
from flask.cli import AppGroup

from .connection import derived_client

if TYPE_CHECKING:
    from .extension import _FlaskRedis

__all__ = ["redis_group"]


def redis_group(ext: _FlaskRedis) -> click.Group:
    """A click group of commands that act on the databases of ``ext``."""
    group = AppGroup(ext.extension_key, help=f"Redis databases of the {ext.config_element} configuration.")

    @group.command("ping")
    def ping() -> None:
        """Ping every configured database: address, server version and round-trip time."""
        failed = 0
        addresses = ext.addresses()
        width = max(len(name) for name in addresses)
        for name, address in addresses.items():
            client = derived_client(ext.getRedis(name), connections=1, wait=1.0)  # tries once: report, do not retry
            try:
                version = client.info("server").get("redis_version", "?")
                started = time.perf_counter()
                client.ping()
                rtt_ms = (time.perf_counter() - started) * 1000
            except redis.RedisError as exc:
                failed += 1
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                click.echo(f"{name:<{width}}  {address}  unreachable: {reason}", err=True)
                continue
            finally:
                client.connection_pool.disconnect()
            click.echo(f"{name:<{width}}  {address}  redis {version}  {rtt_ms:.2f} ms")
        if failed:
            raise SystemExit(1)

    return group
