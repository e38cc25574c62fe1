"""flask_multi_redis.gevent_io: under gevent, redis-py's zero-timeout readiness checks (before its pool lends a
connection) no longer switch to gevent's hub, and say exactly what they said before: an idle connection is
ready, one with an unread reply or closed by the server is not (and the pool replaces it); a pub/sub wait with
a timeout still cooperates. Checked in a gevent-patched child process, with and without the change."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import pytest

from flask_multi_redis.gevent_io import fast_readiness_checks

from .processes import run_cli


def observe(redis_url: str, *mode: str) -> dict[str, Any]:
    done = run_cli(dict(os.environ), sys.executable, "-m", "tests.apps.gevent_io_check", redis_url, *mode)
    assert done.returncode == 0, done.stderr[-3000:]
    found: dict[str, Any] = json.loads(done.stdout)
    return found


SAME = {
    "idle": False,
    "unread_reply_seen": True,
    "unread_reply": "PONG",
    "idle_after_reading": False,
    "server_close_seen": "ConnectionError: Connection closed by server.",
    "ping_after_close": True,
    "message_during_wait": "hi",
}


@pytest.mark.parametrize("mode", ["on", "off"])
def test_the_same_answers_with_and_without_it(redis_url: str, mode: str) -> None:
    found = observe(redis_url, *([mode] if mode == "off" else []))
    assert {key: found[key] for key in SAME} == SAME
    if mode == "on":
        assert found["installed"] == "_Select"
        assert found["switches_in_100_idle_checks"] == 0
    else:
        assert found["installed"] == "module"
        assert found["switches_in_100_idle_checks"] >= 200  # to the hub and back, every time


def test_nothing_changes_in_a_process_gevent_has_not_patched() -> None:
    import redis._parsers.hiredis as parser

    assert fast_readiness_checks() is False
    assert type(getattr(parser, "select")).__name__ == "module"  # noqa: B009
