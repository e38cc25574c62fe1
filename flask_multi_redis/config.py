"""Configuration models and loaders: Flask config (nested section or flat ``REDIS_*`` keys), dict, model or URL.

Every source becomes an :class:`IRedisSimpleConfig` or :class:`IRedisMultiConfig`, and :func:`resolve` turns that
into one :class:`DatabaseSpec` per database: the keyword arguments for the redis client, a display address with the
password hidden, and the key of the connection pool it may share.

Precedence, in one rule: a value may be given once. A URL and an explicit key may both be used, each for other
parts (``URL: rediss://host`` with ``DATABASE: 2``); the same part given twice with different values is a
:class:`ConfigurationError`, never a silent winner. A per-database mapping under ``DATABASES`` overrides the
top-level values it names and inherits the rest; keyword arguments given to the extension reach the client last.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import redis
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from redis.connection import parse_url

from .errors import ConfigurationError

__all__ = [
    "DatabaseSpec",
    "IRedisDatabaseConfig",
    "IRedisMultiConfig",
    "IRedisSimpleConfig",
    "load_config",
    "resolve",
]

log = logging.getLogger(__name__)

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 6379
DEFAULT_NAME = "default"

#: Keyword arguments of ``redis.Redis``: such a key in the config (``REDIS_RETRY_ON_TIMEOUT``) reaches the client.
REDIS_KWARGS = frozenset(inspect.signature(redis.Redis.__init__).parameters) - {"self"}

#: Flat-key spellings of Flask-And-Redis that differ from the nested names.
FLAT_ALIASES = {"DB": "DATABASE", "CHARSET": "ENCODING", "ERRORS": "ENCODING_ERRORS"}

SSL_FIELDS = ("SSL_CA_CERTS", "SSL_CERTFILE", "SSL_KEYFILE", "SSL_CERT_REQS", "SSL_CHECK_HOSTNAME")
SSL_FILE_FIELDS = ("SSL_CA_CERTS", "SSL_CERTFILE", "SSL_KEYFILE")

#: Config field -> the ``redis.Redis`` keyword it sets (where the two differ only by case, the lower-case name).
CLIENT_FIELDS = (
    "SOCKET_TIMEOUT",
    "SOCKET_CONNECT_TIMEOUT",
    "SOCKET_KEEPALIVE",
    "HEALTH_CHECK_INTERVAL",
    "MAX_CONNECTIONS",
    "CLIENT_NAME",
    "DECODE_RESPONSES",
    *SSL_FIELDS,
)

#: Why ``single_connection_client`` is refused, in OPTIONS and in the extension's keyword arguments.
SINGLE_CONNECTION = (
    "is not supported: a session is shared by every thread and greenlet, and would connect while the app is "
    "set up; getRedis(...).client() gives a client bound to one connection"
)

#: redis.Redis keyword arguments that have a config key of their own (so they cannot also come from OPTIONS).
MODELLED_KWARGS = {
    "host": "HOST",
    "port": "PORT",
    "db": "DATABASE",
    "username": "USERNAME",
    "password": "PASSWORD",
    "unix_socket_path": "UNIX_SOCKET_PATH",
    "ssl": "SCHEMA",
    **{name.lower(): name for name in CLIENT_FIELDS},
}

#: Keys that say where the server is: a per-database override naming one of them names a server of its own.
LOCATION_FIELDS = ("SCHEMA", "HOST", "PORT", "UNIX_SOCKET_PATH", *SSL_FIELDS)

Label = Callable[[tuple[str, ...]], str]


def _expected(text: str) -> Any:
    """Attach the accepted form of a field, quoted by ConfigurationError."""
    return Field(default=None, description=text)


class _ServerFields(BaseModel):
    """Where a Redis server is and how to talk to it: shared by every config model."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    URL: str | None = _expected("a redis://, rediss:// or unix:// URL")
    SCHEMA: Literal["redis", "rediss", "unix"] | None = _expected("one of redis, rediss, unix")
    HOST: str | None = _expected("a host name or address (or a unix socket path starting with /)")
    PORT: int | None = Field(default=None, ge=1, le=65535, description="an integer from 1 to 65535")
    USERNAME: str | None = _expected("an ACL user name")
    PASSWORD: SecretStr | None = _expected("a password string")
    PREFIX: str | None = _expected("a string put before every channel name, as PREFIX:channel")
    UNIX_SOCKET_PATH: str | None = _expected("the path of the server's unix socket")
    SOCKET_TIMEOUT: float | None = Field(default=None, gt=0, description="seconds, a number above 0")
    SOCKET_CONNECT_TIMEOUT: float | None = Field(default=None, gt=0, description="seconds, a number above 0")
    SOCKET_KEEPALIVE: bool | None = _expected("true or false")
    HEALTH_CHECK_INTERVAL: int | None = Field(default=None, ge=0, description="whole seconds, 0 to disable")
    MAX_CONNECTIONS: int | None = Field(default=None, ge=1, description="an integer of at least 1")
    SSL_CA_CERTS: str | None = _expected("the path of a PEM file of trusted CA certificates")
    SSL_CERTFILE: str | None = _expected("the path of the client's PEM certificate")
    SSL_KEYFILE: str | None = _expected("the path of the client's PEM private key")
    SSL_CERT_REQS: Literal["required", "optional", "none"] | None = _expected("one of required, optional, none")
    SSL_CHECK_HOSTNAME: bool | None = _expected("true or false")
    CLIENT_NAME: str | None = _expected("a name shown by CLIENT LIST")
    DECODE_RESPONSES: bool | None = _expected("true or false")
    CLASS: type[redis.Redis] | None = _expected("a redis.Redis subclass, or its dotted path")
    OPTIONS: dict[str, Any] = Field(
        default_factory=dict, description="a mapping of further redis.Redis keyword arguments"
    )

    def __repr_args__(self) -> Any:
        """Show the URL with its password masked, and no password-like OPTIONS value."""
        for key, value in super().__repr_args__():
            if key == "URL" and isinstance(value, str):
                yield key, safe_url(value)
            elif key == "OPTIONS" and isinstance(value, dict):
                yield key, {k: "***" if "password" in k else v for k, v in value.items()}
            else:
                yield key, value

    @model_validator(mode="before")
    @classmethod
    def _normalise_keys(cls, data: Any) -> Any:
        """Accept keys in any case, and route ``redis.Redis`` keyword arguments into OPTIONS."""
        if not isinstance(data, Mapping):
            return data
        known = cls.model_fields
        out: dict[str, Any] = {}
        options = dict(data.get("OPTIONS") or data.get("options") or {})
        for key, value in data.items():
            upper = str(key).upper()
            if upper == "OPTIONS":
                continue
            if upper in out:
                raise ValueError(f"{upper} is given twice (keys are case-insensitive)")
            if upper in known:
                out[upper] = value
            elif str(key).lower() in REDIS_KWARGS:
                options[str(key).lower()] = value
            else:
                out[str(key)] = value  # unknown: extra="forbid" reports it by name
        if options:
            out["OPTIONS"] = options
        return out

    @field_validator("CLASS", mode="before")
    @classmethod
    def _import_class(cls, value: Any) -> Any:
        if isinstance(value, str):
            return import_string(value)
        return value

    @field_validator("OPTIONS")
    @classmethod
    def _known_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(value) - REDIS_KWARGS)
        if unknown:
            raise ValueError(f"not a redis.Redis keyword argument: {', '.join(unknown)}")
        if value.get("single_connection_client"):
            raise ValueError(f"single_connection_client {SINGLE_CONNECTION}")
        modelled = sorted(name for name in value if name in MODELLED_KWARGS)
        if modelled:
            keys = ", ".join(MODELLED_KWARGS[name] for name in modelled)
            raise ValueError(f"{', '.join(modelled)} must be set with the {keys} key(s), not in OPTIONS")
        return value


class IRedisDatabaseConfig(_ServerFields):
    """Per-database overrides inside ``DATABASES``: any server key, plus the database index."""

    DATABASE: int | None = Field(default=None, ge=0, description="a database index, an integer of at least 0")


class IRedisSimpleConfig(IRedisDatabaseConfig):
    """One Redis database, for :class:`~flask_multi_redis.FlaskRedisSingle`."""

    NAME: str | None = _expected("a database name used with getRedis()")


class IRedisMultiConfig(_ServerFields):
    """Several named databases, for :class:`~flask_multi_redis.FlaskRedisMulti`.

    ``DATABASES`` maps each name to a database index, or to a mapping of per-database overrides (another
    server, other credentials) that inherits every key it does not name from the top level.
    """

    DATABASES: dict[str, IRedisDatabaseConfig] = Field(
        min_length=1, description="a mapping of name -> database index, or name -> a mapping of overrides"
    )

    @field_validator("DATABASES", mode="before")
    @classmethod
    def _index_shorthand(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {
                name: {"DATABASE": spec} if isinstance(spec, (int, str)) and not isinstance(spec, bool) else spec
                for name, spec in value.items()
            }
        return value


AnyConfig = IRedisSimpleConfig | IRedisMultiConfig


def import_string(path: str) -> Any:
    """Import ``package.module.Name`` or ``package.module:Name``."""
    module_name, sep, attr = path.replace(":", ".").rpartition(".")
    if not sep:
        raise ValueError(f"{path!r} is not a dotted path such as 'redis.Redis'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {path!r}: {exc}") from exc


# ---------------------------------------------------------------------------------------------------------------
# Loading: every source becomes a model


def load_config(
    source: object, *, config_element: str, multi: bool, flask_config: bool = False
) -> tuple[AnyConfig, Label]:
    """Build the config model for ``source`` and a function that names a key the way the user wrote it.

    :param source: a Flask ``app.config`` (with ``flask_config=True``), a mapping, a URL, or a config model.
    :param config_element: the section name (``REDIS``), also the prefix of flat keys (``REDIS_HOST``).
    :param multi: build an :class:`IRedisMultiConfig` rather than an :class:`IRedisSimpleConfig`.
    """
    model_cls: type[AnyConfig] = IRedisMultiConfig if multi else IRedisSimpleConfig

    def nested(path: tuple[str, ...]) -> str:
        return ".".join((config_element, *path))

    if isinstance(source, BaseModel):
        if not isinstance(source, model_cls):
            raise ConfigurationError(
                config_element,
                f"a {type(source).__name__} was given to an extension that needs {model_cls.__name__}",
                "FlaskRedisMulti with IRedisMultiConfig, FlaskRedisSingle with IRedisSimpleConfig",
            )
        return source, nested
    label: Label = nested
    if flask_config:
        assert isinstance(source, Mapping)
        section = source.get(config_element)
        if section is None:
            section, label = _flat_keys(source, config_element)
        else:
            _warn_shadowed_flat_keys(source, config_element)
        if isinstance(section, BaseModel):
            return load_config(section, config_element=config_element, multi=multi)
        source = section
    if isinstance(source, str):
        source = {"URL": source}
    if not isinstance(source, Mapping):
        raise ConfigurationError(
            config_element,
            f"a {type(source).__name__} is not a Redis configuration",
            "a Flask app, a mapping, a URL string or an IRedisSimpleConfig / IRedisMultiConfig",
        )
    _check_shape(source, config_element, multi)
    try:
        return model_cls.model_validate(dict(source)), label
    except ValidationError as exc:
        raise _configuration_error(exc, label, model_cls) from None


def _check_shape(section: Mapping[Any, Any], config_element: str, multi: bool) -> None:
    """Point a Single/Multi mix-up at the right class instead of reporting a missing or unknown key."""
    has_databases = any(str(key).upper() == "DATABASES" for key in section)
    if multi and not has_databases:
        raise ConfigurationError(
            f"{config_element}.DATABASES",
            "is required by FlaskRedisMulti",
            "a mapping of name -> database index; use FlaskRedisSingle for one database",
        )
    if not multi and has_databases:
        raise ConfigurationError(
            f"{config_element}.DATABASES",
            "is not used by FlaskRedisSingle",
            "DATABASE and NAME for one database; use FlaskRedisMulti for several",
        )


def _setting_name(name: str) -> str | None:
    """The config field (or client keyword) a flat key names without its prefix (``DB`` -> ``DATABASE``),
    or None when it is not a Redis setting of ours."""
    name = FLAT_ALIASES.get(name, name)
    return name if name in _fields() or name.lower() in REDIS_KWARGS else None


def _fields() -> dict[str, Any]:
    """Every config field of both models, by name."""
    return {**IRedisSimpleConfig.model_fields, **IRedisMultiConfig.model_fields}


def _warn_shadowed_flat_keys(config: Mapping[str, Any], config_element: str) -> None:
    """Flat keys are read only when the nested section is absent: say so when both are there."""
    lead = config_element + "_"
    shadowed = sorted(key for key in config if key.startswith(lead) and _setting_name(key[len(lead) :].upper()))
    if shadowed:
        log.warning(
            "ignoring config key(s) %s: the nested %s section is used instead", ", ".join(shadowed), config_element
        )


def _flat_keys(config: Mapping[str, Any], config_element: str) -> tuple[dict[str, Any], Label]:
    """Collect Flask-And-Redis style keys (``REDIS_HOST``, ``REDIS_DB`` ...) into a section."""
    lead = config_element + "_"
    section: dict[str, Any] = {}
    written: dict[str, str] = {}
    for key, value in config.items():
        if not key.startswith(lead):
            continue
        name = _setting_name(key[len(lead) :].upper())
        if name is not None:
            section[name] = value
            written[name] = key
        else:
            log.warning("ignoring config key %s: not a Redis setting of the %s extension", key, config_element)

    def label(path: tuple[str, ...]) -> str:
        head = written.get(path[0], lead + path[0]) if path else config_element
        return ".".join((head, *path[1:]))

    return section, label


def _configuration_error(exc: ValidationError, label: Label, model_cls: type[BaseModel]) -> ConfigurationError:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    path = tuple(str(part) for part in first["loc"])
    fields = _fields()
    field_name = next((part for part in reversed(path) if part in fields), "")  # not a database NAME in capitals
    model_field = fields.get(field_name)
    expected = model_field.description if model_field else None
    problem = first["msg"]
    if first["type"] == "extra_forbidden":
        problem = "is not a known key"
        expected = "one of " + ", ".join(sorted(model_cls.model_fields))
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return ConfigurationError(label(path), problem[:1].lower() + problem[1:] + more, expected)


# ---------------------------------------------------------------------------------------------------------------
# Resolving: a model becomes one DatabaseSpec per database


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

    @property
    def pool_key(self) -> tuple[Any, ...]:
        """Databases with equal keys share one connection pool (same server, database and settings)."""
        return (self.client_class, tuple(sorted((k, repr(v)) for k, v in self.kwargs.items())))


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
            inherited = {key: value for key, value in top.items() if key not in LOCATION_FIELDS}
        merged = {**inherited, **own}
        specs.append(_spec(name, merged, label, path, prefix, extra))
    return specs


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
    from_url = _parse_url(model.URL, label((*path, "URL")))
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


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _parse_url(url: str, key: str) -> dict[str, Any]:
    """Split a redis://, rediss:// or unix:// URL into config fields; credentials are percent-decoded."""
    expected = "a redis://, rediss:// or unix:// URL, with special characters in the password percent-encoded"
    try:
        parsed: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a malformed port
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
    return out


_URL_PARTS = {
    "host": "HOST",
    "port": "PORT",
    "db": "DATABASE",
    "username": "USERNAME",
    "password": "PASSWORD",
    "path": "UNIX_SOCKET_PATH",
}


def safe_url(url: str) -> str:
    """The URL with any password replaced by ``***``, for messages, reprs and logs.

    Robust to unencoded ``/``, ``?`` or ``@`` in the password: everything up to the last ``@`` is user info.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<not a URL>"
    userinfo, at, hostpart = rest.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        rest = f"{user}:***@{hostpart}" if colon else f"{user}@{hostpart}"
    return f"{scheme}://" + re.sub(r"(?i)(password=)[^&#]*", r"\1***", rest)


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
                label((*path, key)), f"no such file: {given[key]!r}", "the path of a readable PEM file"
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
    return DatabaseSpec(
        name=name, index=index, prefix=prefix, client_class=client_class, address=address, kwargs=kwargs
    )


def _display_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
