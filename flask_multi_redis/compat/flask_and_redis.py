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
from urllib.parse import urlsplit

from flask import Flask

from flask_multi_redis.commands import ForwardedCommands
from flask_multi_redis.config.models import FLAT_ALIASES, REDIS_KWARGS
from flask_multi_redis.extension import FlaskRedisSingle
from flask_multi_redis.session import RedisSession

__all__ = ["Redis", "flat_config"]

#: What a URL says, and so what REDIS_URL overrides (its user only when it has one: Flask-And-Redis writes that
#: to REDIS_USER, which redis.Redis does not read, and leaves REDIS_USERNAME alone).
_IN_URL = ("HOST", "PORT", "DB", "PASSWORD", "UNIX_SOCKET_PATH")

#: What Flask-And-Redis reads under its prefix besides redis.Redis's keywords (and the old spellings of two).
_OWN = ("URL", "CLASS", *FLAT_ALIASES)


def flat_config(config: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The settings of ``prefix`` (``REDIS_HOST`` ...) read as Flask-And-Redis reads them, as flat keys named as
    they were written: only ``redis.Redis``'s keywords, ``URL`` and ``CLASS`` (other keys under the prefix, an
    app's own ``REDIS_KEY_TTL`` or a longer prefix's ``REDIS_CACHE_URL``, are not its), an empty URL as none,
    ``SSL`` as the ``rediss`` scheme."""
    lead = prefix + "_"
    flat = {
        key: value
        for key, value in config.items()
        if key.startswith(lead) and (key[len(lead) :] in _OWN or key[len(lead) :].lower() in REDIS_KWARGS)
    }
    url = flat.pop(lead + "URL", None)
    if url:
        overridden = (*_IN_URL, "USERNAME") if urlsplit(str(url)).username else _IN_URL
        flat = {key: value for key, value in flat.items() if key[len(lead) :] not in overridden}
        scheme, _, rest = str(url).partition("://")
        flat[lead + "URL"] = f"{scheme}://{rest.rstrip('/')}" if scheme in ("redis", "rediss") else url
    if lead + "SSL" in flat:
        flat[lead + "SCHEMA"] = "rediss" if flat.pop(lead + "SSL") else None
    host = flat.get(lead + "HOST")
    if isinstance(host, str) and host.startswith("file://"):
        flat[lead + "HOST"] = host[len("file://") :]
    return {key: value for key, value in flat.items() if value is not None}


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
        self.extension = FlaskRedisSingle.from_flat_keys(flat_config(app.config, prefix), config_element=prefix)
        self.connection = registered[prefix] = self.extension.getRedis()

    def _commands(self) -> RedisSession | None:
        return self.connection
