"""Resolving: a config model becomes one :class:`DatabaseSpec` per database, by the rule that a value may be
given once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import redis
from pydantic import SecretStr, ValidationError
from redis.connection import parse_url

from flask_multi_redis.errors import ConfigurationError

from .models import (
    CLIENT_FIELDS,
    DEFAULT_HOST,
    DEFAULT_NAME,
    DEFAULT_PORT,
    LOCATION_FIELDS,
    REDIS_KWARGS,
    SINGLE_CONNECTION,
    SSL_FIELDS,
    SSL_FILE_FIELDS,
    AnyConfig,
    IRedisDatabaseConfig,
    IRedisSimpleConfig,
    Label,
    _ServerFields,
)
from .topology import Sentinels, Topology, display_nodes, split_url, topology

__all__ = ["DatabaseSpec", "resolve"]


@dataclass(frozen=True)
class DatabaseSpec:
    """Everything needed to build the client of one configured database.

    ``kwargs`` holds secrets: never log it. ``address`` is safe to show.
    """

    name: str
    index: int
    prefix: str
    client_class: type[redis.Redis]
    address: str
    kwargs: dict[str, Any] = field(repr=False)
    signing_keys: tuple[bytes, ...] = field(default=(), repr=False)  # the first signs, any is accepted
    topology: Topology | None = None  # None: one server, at the address in kwargs

    @property
    def pool_key(self) -> tuple[Any, ...]:
        """Databases with equal keys share one connection pool (same server, database and settings)."""
        kwargs = tuple(sorted((k, repr(v)) for k, v in self.kwargs.items()))
        if isinstance(self.topology, Sentinels):  # the sentinels' own settings are part of the key
            sentinel_kwargs = tuple(sorted((k, repr(v)) for k, v in self.topology.kwargs.items()))
            return (self.client_class, kwargs, self.topology.nodes, self.topology.master, sentinel_kwargs)
        return (self.client_class, kwargs, self.topology)


def resolve(
    config: AnyConfig, label: Label, *, prefix: str | None = None, client_kwargs: Mapping[str, Any] | None = None
) -> list[DatabaseSpec]:
    """Turn a config model into one :class:`DatabaseSpec` per database.

    :param prefix: the extension's default channel prefix; a PREFIX in the config wins over it.
    :param client_kwargs: keyword arguments given to the extension, passed to the client unchanged (last).
    """
    top = _given(config, label, ())
    extra = dict(client_kwargs or {})
    if extra.get("single_connection_client"):
        raise ConfigurationError("single_connection_client", SINGLE_CONNECTION)
    if isinstance(config, IRedisSimpleConfig):
        return [_spec(config.NAME or DEFAULT_NAME, top, label, (), prefix, extra)]
    specs = []
    for name, override in config.DATABASES.items():
        path = ("DATABASES", name)
        own = _given(override, label, path)
        inherited = top
        if override.URL is not None or any(key in own for key in LOCATION_FIELDS):
            inherited = {key: value for key, value in top.items() if key not in _located_by(own)}
        merged = {**inherited, **own}
        specs.append(_spec(name, merged, label, path, prefix, extra))
    return specs


#: Settings of one kind of topology: a database on a server of its own inherits them only from one of its kind.
_SENTINEL_ONLY = ("SENTINEL_USERNAME", "SENTINEL_PASSWORD")
_CLUSTER_ONLY = ("SHARDED_PUBSUB",)


def _located_by(own: Mapping[str, Any]) -> tuple[str, ...]:
    """What a database that names a server of its own (``own``: its settings) does not inherit: where the
    top-level server is, and the settings of a topology it does not have (the sentinels' credentials for one
    that names no sentinels, ``SHARDED_PUBSUB`` for one that is no cluster)."""
    left_out: tuple[str, ...] = LOCATION_FIELDS
    if "SENTINELS" not in own:
        left_out += _SENTINEL_ONLY
    if not own.get("CLUSTER") and "CLUSTER_NODES" not in own:
        left_out += _CLUSTER_ONLY
    return left_out


def _given(model: _ServerFields, label: Label, path: tuple[str, ...]) -> dict[str, Any]:
    """The values a model sets, the URL's parts included; a part given twice differently is an error."""
    given = {
        key: getattr(model, key)
        for key in model.model_fields_set
        if key not in ("URL", "DATABASES", "NAME", "OPTIONS") and getattr(model, key) is not None
    }
    if model.OPTIONS:
        given["OPTIONS"] = dict(model.OPTIONS)
    if model.URL is None:
        return given
    url_key = label((*path, "URL"))
    split = split_url(model.URL, url_key)
    if split is None:
        from_url = _parse_url(model.URL, url_key)
    else:  # the URL names the sentinels or the cluster's nodes, not one server
        from_url = {key: value for key, value in _parse_url(split[0], url_key).items() if key not in ("HOST", "PORT")}
        from_url.update(split[1])
    for key, value in from_url.items():
        if key in given and _plain(given[key]) != _plain(value):
            raise ConfigurationError(
                label((*path, key)),
                f"differs from the value in {label((*path, 'URL'))}",
                "each part of the address in one place only",
            )
    if "OPTIONS" in from_url and "OPTIONS" in given:
        from_url["OPTIONS"] = {**from_url["OPTIONS"], **given.pop("OPTIONS")}
    return {**from_url, **given}


def _shown_path(value: object) -> str:
    """A path for an error, unless it is no path: the key itself given in its place (a PEM, from a secret store)
    is not quoted."""
    text = str(value)
    if "\n" in text or "-----BEGIN" in text or len(text) > 300:
        return f"a {len(text)}-character value that is not a path (the PEM itself? give the path of its file)"
    return repr(text)


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _parse_url(url: str, key: str) -> dict[str, Any]:
    """Split a redis://, rediss:// or unix:// URL into config fields; credentials are percent-decoded."""
    expected = "a redis://, rediss:// or unix:// URL, with special characters in the password percent-encoded"
    try:
        parsed: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        parts = urlsplit(url)
        if parts.port == 0:  # parse_url would leave it out, and the default port be used
            parsed["port"] = 0
        problem = None
    except ValueError:
        problem = "is not a valid Redis URL"  # the URL itself is not quoted: it may hold a password
    if problem is None and parts.scheme != "unix" and parts.path.strip("/") and "db" not in parsed:
        problem = "has a path that is not a database index"
    if problem is not None:
        raise ConfigurationError(key, problem, expected)
    known = REDIS_KWARGS | _URL_PARTS.keys() | {"connection_class"}  # connection_class: parse_url's scheme marker
    unknown = sorted(name for name in parsed if name not in known)
    if unknown:
        raise ConfigurationError(key, f"has unknown query argument(s): {', '.join(unknown)}", "redis.Redis arguments")
    out: dict[str, Any] = {"SCHEMA": parts.scheme}
    options: dict[str, Any] = {}
    for name, value in parsed.items():
        if name == "connection_class":
            continue
        if name in _URL_PARTS:
            out[_URL_PARTS[name]] = SecretStr(value) if name == "password" else value
        elif name.upper() in CLIENT_FIELDS:
            out[name.upper()] = value
        else:
            options[name] = value
    if options:
        out["OPTIONS"] = options
    _check_url_values(out, key)
    return out


#: The fields a URL may set that its keys check (PORT 0 is no port; ``?decode_responses=false`` is False, where
#: redis-py would pass the text "false" on, which is true).
_CHECKED = ("PORT", "DATABASE", *CLIENT_FIELDS)


def _check_url_values(fields: dict[str, Any], key: str) -> None:
    """Check the values a URL sets as their config keys are checked, and keep them as the keys would have them.

    :raises ConfigurationError: one is out of its key's range, or not of its type.
    """
    checked = {name: fields[name] for name in _CHECKED if name in fields}
    try:
        model = IRedisDatabaseConfig.model_validate(checked)
    except ValidationError as exc:
        field = str(exc.errors(include_input=False, include_url=False)[0]["loc"][0])
        expected = IRedisDatabaseConfig.model_fields[field].description
        raise ConfigurationError(key, f"sets {field} to what its key would not take", expected) from None
    fields.update((name, getattr(model, name)) for name in checked)


_URL_PARTS = {
    "host": "HOST",
    "port": "PORT",
    "db": "DATABASE",
    "username": "USERNAME",
    "password": "PASSWORD",
    "path": "UNIX_SOCKET_PATH",
}


def _spec(
    name: str,
    given: dict[str, Any],
    label: Label,
    path: tuple[str, ...],
    default_prefix: str | None,
    client_kwargs: dict[str, Any],
) -> DatabaseSpec:
    host = given.get("HOST", DEFAULT_HOST)
    socket_path = given.get("UNIX_SOCKET_PATH")
    if socket_path is None and host.startswith("/"):
        socket_path = host  # Flask-And-Redis accepted a socket path in REDIS_HOST
    if "UNIX_SOCKET_PATH" in given and ("HOST" in given or "PORT" in given):
        raise ConfigurationError(
            label((*path, "UNIX_SOCKET_PATH")), "is set together with HOST/PORT", "a unix socket or a host, not both"
        )
    if socket_path and given.get("SCHEMA", "unix") != "unix":
        raise ConfigurationError(
            label((*path, "SCHEMA")), f"is {given['SCHEMA']} but a unix socket path is set", "SCHEMA unix"
        )
    scheme = given.get("SCHEMA") or ("unix" if socket_path else "redis")
    index = int(given.get("DATABASE", 0))
    kwargs: dict[str, Any] = {"db": index}
    if scheme == "unix":
        if not socket_path:
            raise ConfigurationError(
                label((*path, "UNIX_SOCKET_PATH")), "is required with SCHEMA unix", "a socket path"
            )
        kwargs["unix_socket_path"] = socket_path
        address = f"unix://{socket_path}?db={index}"
    else:
        port = int(given.get("PORT", DEFAULT_PORT))
        kwargs.update(host=host, port=port)
        address = f"{scheme}://{_display_host(host)}:{port}/{index}"
    if "USERNAME" in given:
        kwargs["username"] = given["USERNAME"]
    if "PASSWORD" in given:
        kwargs["password"] = given["PASSWORD"].get_secret_value()
    if "USERNAME" in given or "PASSWORD" in given:
        user = quote(given.get("USERNAME", ""), safe="")
        address = address.replace("://", f"://{user}:***@" if "PASSWORD" in given else f"://{user}@", 1)
    ssl_given = [key for key in SSL_FIELDS if key in given]
    if ssl_given and scheme != "rediss":
        raise ConfigurationError(
            label((*path, ssl_given[0])),
            f"is set but the connection is {scheme}://, not TLS",
            "SCHEMA rediss or a rediss:// URL",
        )
    for key in SSL_FILE_FIELDS:
        if key in given and not os.path.isfile(given[key]):
            raise ConfigurationError(
                label((*path, key)), f"no such file: {_shown_path(given[key])}", "the path of a readable PEM file"
            )
    if scheme == "rediss":
        kwargs["ssl"] = True
    for key in CLIENT_FIELDS:
        if key in given:
            kwargs[key.lower()] = given[key]
    kwargs.update(given.get("OPTIONS", {}))
    kwargs.update(client_kwargs)
    prefix = given.get("PREFIX", default_prefix) or ""
    client_class = given.get("CLASS", redis.Redis)
    shape = topology(given, label, path, scheme)
    if shape is not None:
        address = _topology_address(shape, kwargs, address)
    return DatabaseSpec(
        name=name,
        index=index,
        prefix=prefix,
        client_class=client_class,
        address=address,
        kwargs=kwargs,
        signing_keys=_signing_keys(given, label, path),
        topology=shape,
    )


def _topology_address(shape: Topology, kwargs: dict[str, Any], address: str) -> str:
    """Take the one server's address out of ``kwargs`` (the sentinels or the cluster say where the nodes are)
    and write the address to show, in the URL form of the topology."""
    scheme, _, rest = address.partition("://")
    userinfo = rest.rpartition("@")[0] + "@" if "@" in rest else ""
    if isinstance(shape, Sentinels):
        kwargs.pop("host"), kwargs.pop("port")
        return f"{scheme}+sentinel://{userinfo}{display_nodes(shape.nodes)}/{shape.master}/{kwargs['db']}"
    kwargs.pop("db"), kwargs.pop("host"), kwargs.pop("port")
    return f"{scheme}+cluster://{userinfo}{display_nodes(shape.nodes)}"


def _signing_keys(given: dict[str, Any], label: Label, path: tuple[str, ...]) -> tuple[bytes, ...]:
    if "SIGNING_KEY" in given and "SIGNING_KEYS" in given:
        raise ConfigurationError(
            label((*path, "SIGNING_KEYS")), "is set together with SIGNING_KEY", "one of them (a list rotates keys)"
        )
    keys = given.get("SIGNING_KEYS") or ([given["SIGNING_KEY"]] if "SIGNING_KEY" in given else [])
    return tuple(key.get_secret_value().encode() for key in keys)


def _display_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
