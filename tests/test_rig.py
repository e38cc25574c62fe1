"""The test servers themselves: each kind starts and answers as configured."""

from __future__ import annotations

import pytest
import redis

from .servers import RedisServer


def test_plain_server_is_not_the_shared_one(redis_server: RedisServer) -> None:
    assert redis_server.port != 6379
    assert redis.Redis(host=redis_server.host, port=redis_server.port).ping()


def test_password_server_refuses_anonymous_clients(password_server: RedisServer) -> None:
    anonymous = redis.Redis(host=password_server.host, port=password_server.port)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    assert password_server.admin().ping()
