"""The pytest plugin users get (the ``pytest11`` entry point), run as a user's test session would run it: in a
pytest of its own, in a fresh directory, with nothing of this project's conftest."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

pytest_plugins = ["pytester"]

USERS_TESTS = """
import time

from pydantic import BaseModel

from flask_multi_redis.broker import Channel
from flask_multi_redis.testing import call, expect_broadcast


class AddIn(BaseModel):
    a: int
    b: int


class Reload(BaseModel):
    section: str


add = Channel("math.add", request=AddIn, reply=int)
reload_settings = Channel("config.reload", request=Reload, reply=dict)


def test_a_handler(redis_app):
    app = redis_app()
    broker = app.extensions["redis"].broker

    @broker.handler(add)
    def add_numbers(message: AddIn) -> int:
        return message.a + message.b

    assert call(app, add, AddIn(a=2, b=3)) == 5


def test_a_broadcast(redis_app):
    app = redis_app(PREFIX="shop")
    redis = app.extensions["redis"]
    with expect_broadcast(app, reload_settings) as seen:
        with app.app_context():
            redis.broker.publish(reload_settings, Reload(section="prices"))
    assert seen == [Reload(section="prices")]


def test_no_broadcast_ends_by_its_deadline(redis_app):
    app = redis_app()
    started = time.monotonic()
    try:
        with expect_broadcast(app, reload_settings, timeout=0.3):
            pass
    except TimeoutError as exc:
        assert "config.reload" in str(exc)
    assert time.monotonic() - started < 3


import pytest


@pytest.mark.parametrize("run", [1, 2])
def test_each_test_starts_empty(redis_url, run):
    import redis
    client = redis.Redis.from_url(redis_url)
    assert client.dbsize() == 0
    client.set("left", "behind")
"""


def test_the_plugin_in_a_users_test_session(pytester: pytest.Pytester) -> None:
    readme = (ROOT / "README.md").read_text().split("## Testing an app that uses it", 1)[1]
    example = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)[0]
    pytester.makepyfile(test_users=USERS_TESTS, test_readme_example=example)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "test_users.py", "test_readme_example.py")
    result.assert_outcomes(passed=7)


def test_without_redis_server_the_tests_that_need_it_are_skipped(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"  # a PATH with this Python and nothing else
    bin_dir.mkdir()
    os.symlink(sys.executable, bin_dir / "python")
    monkeypatch.setenv("PATH", str(bin_dir))
    assert shutil.which("redis-server") is None
    pytester.makepyfile(test_users="def test_it(redis_url):\n    pass\n\ndef test_other():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs", "test_users.py")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*redis-server is not installed*"])
