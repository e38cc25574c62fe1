"""Flask + Redis: one or many databases from Flask config, with prefix-aware pub/sub and reply waiting.

The public names load on first use, so that ``flask-redis-worker --pool gevent`` can monkey-patch before
Flask, redis-py or ssl are imported.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "ClusterSession": "cluster",
    "CodecError": "errors",
    "ConfigurationError": "errors",
    "DecodeError": "errors",
    "EncodeError": "errors",
    "FlaskRedisError": "errors",
    "FlaskRedisMulti": "extension",
    "FlaskRedisSingle": "extension",
    "IRedisDatabaseConfig": "config",
    "IRedisMultiConfig": "config",
    "IRedisSimpleConfig": "config",
    "NotInitializedError": "errors",
    "RedisExtension": "extension",
    "RedisSession": "session",
    "ReplyTimeout": "errors",
    "UnknownDatabaseError": "errors",
    "decode": "codec",
    "encode": "codec",
}

__all__ = [
    "ClusterSession",
    "CodecError",
    "ConfigurationError",
    "DecodeError",
    "EncodeError",
    "FlaskRedisError",
    "FlaskRedisMulti",
    "FlaskRedisSingle",
    "IRedisDatabaseConfig",
    "IRedisMultiConfig",
    "IRedisSimpleConfig",
    "NotInitializedError",
    "RedisExtension",
    "RedisSession",
    "ReplyTimeout",
    "UnknownDatabaseError",
    "__version__",
    "decode",
    "encode",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from .cluster import ClusterSession
    from .codec import decode, encode
    from .config import IRedisDatabaseConfig, IRedisMultiConfig, IRedisSimpleConfig
    from .errors import (
        CodecError,
        ConfigurationError,
        DecodeError,
        EncodeError,
        FlaskRedisError,
        NotInitializedError,
        ReplyTimeout,
        UnknownDatabaseError,
    )
    from .extension import FlaskRedisMulti, FlaskRedisSingle, RedisExtension
    from .session import RedisSession
