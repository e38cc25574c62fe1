"""Configuration models and loaders: Flask config (nested section or flat ``REDIS_*`` keys), dict, model or URL.

Every source becomes an :class:`IRedisSimpleConfig` or :class:`IRedisMultiConfig`, and :func:`resolve` turns that
into one :class:`DatabaseSpec` per database: the keyword arguments for the redis client, a display address with the
password hidden, and the key of the connection pool it may share.

Precedence, in one rule: a value may be given once. A URL and an explicit key may both be used, each for other
parts (``URL: rediss://host`` with ``DATABASE: 2``); the same part given twice with different values is a
:class:`ConfigurationError`, never a silent winner. A per-database mapping under ``DATABASES`` overrides the
top-level values it names and inherits the rest; keyword arguments given to the extension reach the client last.
"""

from .loading import load_config
from .models import AnyConfig, IRedisDatabaseConfig, IRedisMultiConfig, IRedisSimpleConfig, Label, safe_url
from .resolving import DatabaseSpec, resolve
from .topology import ClusterNodes, Sentinels, Topology

__all__ = [
    "AnyConfig",
    "ClusterNodes",
    "DatabaseSpec",
    "IRedisDatabaseConfig",
    "IRedisMultiConfig",
    "IRedisSimpleConfig",
    "Label",
    "Sentinels",
    "Topology",
    "load_config",
    "resolve",
    "safe_url",
]
