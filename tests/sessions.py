"""What the session tests share: a deadline, a model, sessions made from a URL, and plain pub/sub helpers."""

from __future__ import annotations

import time
from typing import Any, cast

import redis
from flask import Flask
from pydantic import BaseModel
from redis.client import PubSub

from flask_multi_redis import FlaskRedisSingle, RedisExtension, RedisSession

WAIT = 5.0  # generous deadline for things that should happen at once


class Reply(BaseModel):
    id: int
    text: str
    tags: list[str] = []


def make_session(redis_url: str, **config: Any) -> RedisSession:
    client_kwargs = config.pop("client_kwargs", {})
    return FlaskRedisSingle({"URL": redis_url, **config}, **client_kwargs).getRedis()


def close_sessions(ext: RedisExtension, app: Flask | None = None) -> None:
    """Stop ``ext``'s broker and close the connections of its sessions (behind sentinels, a replica's too), rather
    than leave their sockets to the garbage collector, whose warning may come only at the end of the run."""
    ext.broker.stop()
    for name, session in ext.sessions(app).items():
        for each in (session, ext.getRedis(name, app=app, replica=True)):
            if isinstance(each, RedisSession):
                each.connection_pool.disconnect()
            else:
                each.close()


def raw_subscriber(client: redis.Redis, *channels: str) -> PubSub:
    """A plain PubSub on the exact ``channels``, returned once the server has confirmed them."""
    pubsub = client.pubsub()
    pubsub.subscribe(*channels)
    confirmed = 0
    deadline = time.monotonic() + WAIT
    while confirmed < len(channels):
        remaining = deadline - time.monotonic()
        assert remaining > 0, "the server did not confirm SUBSCRIBE"
        message = pubsub.get_message(timeout=remaining)
        if message is not None and message["type"] == "subscribe":
            confirmed += 1
    return pubsub


def next_data(pubsub: PubSub, timeout: float = WAIT) -> dict[str, Any] | None:
    """The next ``message`` on a plain PubSub, or None at the deadline."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        message = pubsub.get_message(timeout=remaining)
        if message is not None and message["type"] == "message":
            return cast(dict[str, Any], message)
    return None
