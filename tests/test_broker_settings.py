"""Broker settings: read when a process's runtime is made; configure() changes them and starts afresh."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flask_multi_redis import FlaskRedisSingle


@pytest.fixture
def ext(redis_url: str) -> Iterator[FlaskRedisSingle]:
    ext = FlaskRedisSingle({"URL": redis_url, "PREFIX": "settings"})
    yield ext
    ext.broker.stop()


def test_settings_may_be_set_before_any_app_or_config() -> None:
    ext = FlaskRedisSingle()  # an app factory's extension, outside any app context
    ext.broker.configure(concurrency=3, role="batch")
    assert (ext.broker.concurrency, ext.broker.role) == (3, "batch")
    assert ext.broker.settings().concurrency == 3


def test_unknown_or_bad_settings_are_refused_and_nothing_changes() -> None:
    ext = FlaskRedisSingle()
    with pytest.raises(TypeError, match="not a broker setting: colour"):
        ext.broker.configure(colour="blue")
    with pytest.raises(ValueError, match="connections must be at least 3"):
        ext.broker.configure(connections=2, concurrency=5)
    assert (ext.broker.connections, ext.broker.concurrency) == (4, 8)


def test_a_running_runtime_with_other_settings_is_replaced(ext: FlaskRedisSingle) -> None:
    first = ext.broker.start(timeout=5)
    ext.broker.configure(role="web")  # what it runs with already: kept
    assert ext.broker.runtime() is first
    ext.broker.configure(role="batch", heartbeat_interval=0.5)
    assert not first.listener.running  # stopped
    second = ext.broker.start(timeout=5)
    assert second is not first
    assert (second.settings.role, second.settings.heartbeat_interval) == ("batch", 0.5)
    assert second.sender.role == "batch"


def test_a_timeout_beyond_max_timeout_is_refused(ext: FlaskRedisSingle) -> None:
    from flask_multi_redis.broker import Channel

    channel = Channel("settings.nothing")
    with pytest.raises(ValueError, match=r"timeout must be from 0 to max_timeout \(300.0 s\), not 301"):
        ext.broker.request(channel, None, timeout=301)
    with pytest.raises(ValueError, match="max_timeout"):
        ext.broker.broadcast(channel, None, gather=True, timeout=-1)
    with pytest.raises(ValueError, match="max_timeout must be above 0"):
        ext.broker.configure(max_timeout=0)
