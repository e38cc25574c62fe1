"""Errors and log lines that tell: where Redis is and why it cannot be used, at once when it is no passing
glitch; one log line per outage; a config that is not there, or misspelt, is pointed out."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from flask_multi_redis import ConfigurationError, FlaskRedisSingle
from flask_multi_redis.broker import BrokerUnavailable, Channel, RemoteError

from .apps.svc import AddIn, add
from .conftest import ServerFactory
from .processes import WorkerProcess
from .servers import RedisServer, TLSFiles
from .test_extension import closed_port
from .waiting import wait_until


def refused_at_once(ext: FlaskRedisSingle, *fragments: str) -> BrokerUnavailable:
    """Starting the broker fails within a second or two (not at its 10 s timeout), saying each fragment."""
    started = time.monotonic()
    try:
        with pytest.raises(BrokerUnavailable) as caught:
            ext.broker.start(timeout=10)
        assert time.monotonic() - started < 3
        for fragment in fragments:
            assert fragment in str(caught.value), str(caught.value)
        with pytest.raises(BrokerUnavailable):
            ext.broker.request(add, AddIn(a=1, b=1), timeout=10)
        assert time.monotonic() - started < 5
        return caught.value
    finally:
        ext.broker.stop(timeout=1)


def test_an_unreachable_server_is_named_with_the_reason(redis_server: RedisServer) -> None:
    port = closed_port()
    error = refused_at_once(FlaskRedisSingle(f"redis://127.0.0.1:{port}"), f"127.0.0.1:{port}", "refused")
    assert error.__cause__ is not None


def test_a_wrong_password_is_named_and_not_shown(password_server: RedisServer) -> None:
    url = f"redis://:not-the-password@127.0.0.1:{password_server.port}/0"
    error = refused_at_once(FlaskRedisSingle(url), f"redis://:***@127.0.0.1:{password_server.port}/0", "WRONGPASS")
    assert "not-the-password" not in str(error)


def test_a_certificate_from_another_ca_fails_closed_and_says_so(tls_server: RedisServer, tmp_path: Path) -> None:
    other = TLSFiles.generate(tmp_path / "other")
    url = f"rediss://127.0.0.1:{tls_server.port}/0"
    refused_at_once(FlaskRedisSingle({"URL": url, "SSL_CA_CERTS": str(other.ca)}), url, "CERTIFICATE_VERIFY_FAILED")


def test_a_certificate_for_another_host_fails_closed(redis_server_factory: ServerFactory, tmp_path: Path) -> None:
    files = TLSFiles.generate(tmp_path / "elsewhere", names=("elsewhere.example",))
    server = redis_server_factory(tls=files)
    url = f"rediss://127.0.0.1:{server.port}/0"
    refused_at_once(FlaskRedisSingle({"URL": url, "SSL_CA_CERTS": str(files.ca)}), "CERTIFICATE_VERIFY_FAILED")


def test_one_error_line_per_outage_and_one_when_it_is_over(
    redis_server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    server = redis_server_factory()
    ext = FlaskRedisSingle(server.url)
    ext.broker.start(timeout=5)
    try:
        with caplog.at_level(logging.DEBUG, logger="flask_multi_redis.broker.listener"):
            server.stop()
            wait_until(lambda: ext.broker.health().listener.reconnects >= 3, timeout=20)
            server.start()
            wait_until(lambda: "again after" in caplog.text, timeout=20)
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert errors[0].exc_info is None  # the tracebacks are at DEBUG
        assert f"127.0.0.1:{server.port}" in errors[0].getMessage()
        assert any(r.levelno == logging.DEBUG and r.exc_info for r in caplog.records)
        assert ext.broker.health().listener.last_error is None
    finally:
        ext.broker.stop()


def test_a_missing_section_warns_and_suggests_a_near_miss(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    FlaskRedisSingle(make_app(REDSI={"HOST": "cache.local"}))
    assert "no Redis configuration for the REDIS extension" in caplog.text
    assert "'REDSI': is that meant to be 'REDIS'?" in caplog.text


def test_misspelt_keys_are_pointed_at(make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigurationError, match=r"REDIS\.HSOT: is not a known key \(did you mean HOST\?\)"):
        FlaskRedisSingle(make_app(REDIS={"HSOT": "cache.local"}))
    FlaskRedisSingle(make_app(REDIS_HSOT="cache.local"))
    assert "ignoring config key REDIS_HSOT: not a Redis setting of the REDIS extension (did you mean REDIS_HOST?)" in (
        caplog.text
    )


def test_callers_may_be_told_only_the_type_of_an_error(redis_url: str) -> None:
    secret = Channel("tell.secret")
    ext = FlaskRedisSingle({"URL": redis_url, "PREFIX": "tell"})
    ext.broker.error_messages = False

    @ext.broker.handler(secret)
    def fails(_: object) -> None:
        raise ValueError("the database password is hunter2")

    ext.broker.start(timeout=5)
    try:
        with pytest.raises(RemoteError) as caught:
            ext.broker.request(secret, None, timeout=5)
        assert caught.value.remote_type == "ValueError"
        assert caught.value.remote_message == ""
        assert "hunter2" not in str(caught.value)
    finally:
        ext.broker.stop()


def test_under_gunicorn_the_listener_logs_through_gunicorns_error_log(broker_env: dict[str, str]) -> None:
    env = {**broker_env, "REDIS_URL": f"redis://127.0.0.1:{closed_port()}"}
    argv = [sys.executable, "-m", "gunicorn", "-w", "1", "-b", "127.0.0.1:0", "tests.apps.svc:create_app()"]
    web = WorkerProcess(argv, env)
    try:
        web.wait_for_log("cannot connect to")
        (line,) = [line for line in web.lines if "cannot connect to" in line]
        assert "[ERROR]" in line  # gunicorn's format: time, pid, level
        assert line.startswith("[")
    finally:
        web.process.terminate()
        web.finish()
