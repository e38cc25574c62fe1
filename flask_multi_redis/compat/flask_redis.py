"""flask-redis's ``FlaskRedis`` (underyx/flask-redis), as its documentation describes it, over
FlaskRedisSingle: ``from flask_multi_redis.compat.flask_redis import FlaskRedis`` in place of
``from flask_redis import FlaskRedis``.

- ``FlaskRedis(app=None, strict=True, config_prefix="REDIS", **kwargs)`` and ``init_app(app, **kwargs)``; the
  URL is ``app.config["<config_prefix>_URL"]`` (``redis://localhost:6379/0`` when absent; ``unix://`` too), and
  the keyword arguments go to the client, as ``redis.Redis`` takes them (what the URL sets wins, as in
  ``from_url``).
- The client's commands are the extension's (``redis_client.get("potato")``), and so are ``[]``, ``[] =`` and
  ``del []``; ``app.extensions[config_prefix.lower()]`` is the extension.
- ``FlaskRedis.from_custom_provider(provider, app=None, **kwargs)`` makes the client with
  ``provider.from_url(url, **kwargs)`` instead.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from redis.connection import parse_url

from flask_multi_redis.commands import ForwardedCommands
from flask_multi_redis.extension import FlaskRedisSingle

__all__ = ["FlaskRedis"]

DEFAULT_URL = "redis://localhost:6379/0"


def _below_url(url: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` without what ``url`` sets: in ``from_url(url, **kwargs)``, which flask-redis calls, the URL's
    parts (its database, host, credentials, query arguments) win over the keyword arguments."""
    try:
        from_url = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError:  # the config check says what is wrong with it
        return kwargs
    return {name: value for name, value in kwargs.items() if name not in from_url}


class FlaskRedis(ForwardedCommands):
    """flask-redis's extension: one client, its commands on the extension."""

    def __init__(self, app: Flask | None = None, strict: bool = True, config_prefix: str = "REDIS", **kwargs: Any):
        self.strict = strict  # with redis-py 3 and later StrictRedis is Redis: both give a redis.Redis
        self.config_prefix = config_prefix
        self.provider_kwargs = kwargs
        self.provider_class: Any = None  #: a custom provider (from_custom_provider), or None for ours
        self.extension: FlaskRedisSingle | None = None  #: the FlaskRedisSingle behind it, once initialised
        self._redis_client: Any = None
        if app is not None:
            self.init_app(app)

    @classmethod
    def from_custom_provider(cls, provider: Any, app: Flask | None = None, **kwargs: Any) -> FlaskRedis:
        """An extension whose client is ``provider.from_url(url, **kwargs)`` (a redis.Redis subclass, say).

        :raises TypeError: ``provider`` is None.
        """
        if provider is None:
            raise TypeError("from_custom_provider needs a provider class with from_url(), not None")
        instance = cls(**kwargs)
        instance.provider_class = provider
        if app is not None:
            instance.init_app(app)
        return instance

    def init_app(self, app: Flask, **kwargs: Any) -> None:
        """Make the client from ``app``'s ``<config_prefix>_URL``, with the constructor's and these keyword
        arguments (they are added to the constructor's, as flask-redis does)."""
        url = app.config.get(f"{self.config_prefix}_URL", DEFAULT_URL)
        self.provider_kwargs.update(kwargs)
        if self.provider_class is not None:
            self._redis_client = self.provider_class.from_url(url, **self.provider_kwargs)
        else:
            self.extension = FlaskRedisSingle.from_flat_keys(
                {f"{self.config_prefix}_URL": url},
                config_element=self.config_prefix,
                **_below_url(url, self.provider_kwargs),
            )
            self._redis_client = self.extension.getRedis()
        app.extensions[self.config_prefix.lower()] = self

    def _commands(self) -> Any:
        return self._redis_client
