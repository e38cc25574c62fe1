"""Flask + Redis: one or many databases from Flask config, with prefix-aware pub/sub and reply waiting."""

from __future__ import annotations

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
from .extension import FlaskRedisMulti, FlaskRedisSingle
from .session import RedisSession

__version__ = "0.1.0"

__all__ = [
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
    "RedisSession",
    "ReplyTimeout",
    "UnknownDatabaseError",
    "__version__",
    "decode",
    "encode",
]
