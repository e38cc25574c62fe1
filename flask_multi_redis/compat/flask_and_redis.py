"""Flask-And-Redis's ``Redis`` extension, as its documentation describes it, over FlaskRedisSingle:
``from flask_multi_redis.compat.flask_and_redis import Redis`` in place of ``from flask_redis import Redis``.

- ``Redis(app=None, config_prefix=None)`` and ``init_app(app, config_prefix=None)``; the config prefix
  (``REDIS`` by default) names the flat keys: ``REDIS_HOST``, ``REDIS_PORT``, ``REDIS_DB``, ``REDIS_PASSWORD``,
  ``REDIS_SOCKET_TIMEOUT``, ``REDIS_DECODE_RESPONSES``, ``REDIS_UNIX_SOCKET_PATH``, ``REDIS_CLASS`` and any other
  ``redis.Redis`` keyword, in upper case.
- ``REDIS_URL`` wins over the keys it carries (host, port, database, user, password); the other keys still
  apply. ``REDIS_HOST`` may be a unix socket path, plain or as ``file:///path``.
- The connection's commands are the extension's (``redis.get("k")``); the connection itself is
  ``redis.connection`` and ``app.extensions["redis"][config_prefix]``; registering one prefix twice on an app
  raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from flask_multi_redis.commands import ForwardedCommands
from flask_multi_redis.config.models import FLAT_ALIASES
from flask_multi_redis.extension import FlaskRedisSingle
from flask_multi_redis.session import RedisSession

__all__ = ["Redis", "flat_config"]

#: What a URL says, and so what REDIS_URL overrides.
_IN_URL = ("HOST", "PORT", "DB", "DATABASE", "USERNAME", "PASSWORD", "UNIX_SOCKET_PATH")


def flat_config(config: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The settings of ``prefix`` (``REDIS_HOST`` ...) as FlaskRedisSingle's config, read as Flask-And-Redis
    reads them."""
    lead = prefix + "_"
    section = {
        FLAT_ALIASES.get(key[len(lead) :], key[len(lead) :]): value
        for key, value in config.items()
        if key.startswith(lead)
    }
    url = section.get("URL")
    if url:
        section = {key: value for key, value in section.items() if key not in _IN_URL}
        scheme, _, rest = str(url).partition("://")
        section["URL"] = f"{scheme}://{rest.rstrip('/')}" if scheme in ("redis", "rediss") else url
    host = section.get("HOST")
    if isinstance(host, str) and host.startswith("file://"):
        section["HOST"] = host[len("file://") :]
    return section


class Redis(ForwardedCommands):
    """Flask-And-Redis's extension: one connection per config prefix, its commands on the extension."""

    def __init__(self, app: Flask | None = None, config_prefix: str | None = None) -> None:
        self.config_prefix = config_prefix or "REDIS"
        self.extension: FlaskRedisSingle | None = None  #: the FlaskRedisSingle behind it, once initialised
        self.connection: RedisSession | None = None  #: the connection (a redis.Redis), once initialised
        if app is not None:
            self.init_app(app, config_prefix)

    def init_app(self, app: Flask, config_prefix: str | None = None) -> None:
        """Read ``app``'s settings of ``config_prefix`` (by default the constructor's) and connect lazily.

        :raises ValueError: that prefix is registered on ``app`` already.
        """
        prefix = config_prefix or self.config_prefix
        registered: dict[str, Any] = app.extensions.setdefault("redis", {})
        if prefix in registered:
            raise ValueError(f"Already registered config prefix {prefix!r}.")
        self.config_prefix = prefix
        self.extension = FlaskRedisSingle(flat_config(app.config, prefix), config_element=prefix)
        self.connection = registered[prefix] = self.extension.getRedis()

    def _commands(self) -> RedisSession | None:
        return self.connection
