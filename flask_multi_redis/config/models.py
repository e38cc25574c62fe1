"""The configuration models: every key, what it means and the values it accepts."""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

import redis
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = [
    "AnyConfig",
    "IRedisDatabaseConfig",
    "IRedisMultiConfig",
    "IRedisSimpleConfig",
    "Label",
    "check_node",
    "import_string",
    "safe_url",
]

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

#: Keys that say where the servers are when the sentinels or a cluster say where the data nodes are.
TOPOLOGY_FIELDS = ("SENTINELS", "SENTINEL_MASTER", "CLUSTER", "CLUSTER_NODES")

#: Keys that say where the server is: a per-database override naming one of them names a server of its own.
LOCATION_FIELDS = ("SCHEMA", "HOST", "PORT", "UNIX_SOCKET_PATH", *SSL_FIELDS, *TOPOLOGY_FIELDS)

_NODE = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[^\s:\[\]/]+):[0-9]{1,5}$")

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
    SENTINELS: list[str] | None = Field(
        default=None,
        min_length=1,
        description="a list of the sentinels' host:port (in flat keys, comma-separated)",
    )
    SENTINEL_MASTER: str | None = _expected("the service name the sentinels monitor the primary by")
    SENTINEL_USERNAME: str | None = _expected("the sentinels' own ACL user name")
    SENTINEL_PASSWORD: SecretStr | None = _expected("the sentinels' own password")
    CLUSTER: bool | None = _expected("true for a Redis Cluster (URL, HOST and PORT name a startup node)")
    CLUSTER_NODES: list[str] | None = Field(
        default=None,
        min_length=1,
        description="a list of the cluster's startup nodes as host:port (in flat keys, comma-separated)",
    )
    SHARDED_PUBSUB: bool | None = _expected("true or false: sharded pub/sub on a cluster (the default there)")
    SIGNING_KEY: SecretStr | None = _expected("a secret of at least 16 characters that signs broker messages")
    SIGNING_KEYS: list[SecretStr] | None = Field(
        default=None,
        min_length=1,
        description="a list of such secrets: the first signs, any is accepted (in flat keys, comma-separated)",
    )
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

    @field_validator("SIGNING_KEYS", "SENTINELS", "CLUSTER_NODES", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("SENTINELS", "CLUSTER_NODES")
    @classmethod
    def _host_ports(cls, value: list[str] | None) -> list[str] | None:
        for node in value or ():
            check_node(node)
        return value

    @field_validator("SIGNING_KEY", "SIGNING_KEYS")
    @classmethod
    def _long_enough(cls, value: Any) -> Any:
        keys = value if isinstance(value, list) else [] if value is None else [value]
        if any(len(key.get_secret_value()) < 16 for key in keys):
            raise ValueError("a signing key must have at least 16 characters")
        return value

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


def check_node(node: str) -> tuple[str, int]:
    """``host:port`` (an IPv6 address in brackets) as a (host, port) pair.

    :raises ValueError: it is not of that form.
    """
    port = node.rpartition(":")[2]
    if not _NODE.match(node) or not 1 <= int(port) <= 65535:
        shown = node.rpartition("@")[2] if "@" in node else node  # credentials written into it are not quoted
        raise ValueError(f"{shown[:100]!r} is not host:port (an IPv6 address in brackets, a port 1-65535)")
    return node.rpartition(":")[0].strip("[]"), int(port)


def import_string(path: str) -> Any:
    """Import ``package.module.Name`` or ``package.module:Name``."""
    module_name, sep, attr = path.replace(":", ".").rpartition(".")
    if not sep:
        raise ValueError(f"{path!r} is not a dotted path such as 'redis.Redis'")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {path!r}: {exc}") from exc


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
