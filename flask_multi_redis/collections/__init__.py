"""Typed Redis collections, sync (threads and gevent): values of one type each (``str``, ``bytes``, ``int``,
``float``, ``dict`` / ``list`` as JSON, or a pydantic model), checked on write and on read, under the session's
PREFIX. Constructed as purse's are: ``RedisList(redis, rkey, value_type)``."""

from flask_multi_redis.errors import CollectionValueError

from .lists import RedisList
from .mappings import RedisHash, RedisKeySpace
from .queues import RedisLifoQueue, RedisPriorityQueue, RedisQueue
from .sets import RedisSet, RedisSortedSet

__all__ = [
    "CollectionValueError",
    "RedisHash",
    "RedisKeySpace",
    "RedisLifoQueue",
    "RedisList",
    "RedisPriorityQueue",
    "RedisQueue",
    "RedisSet",
    "RedisSortedSet",
]
