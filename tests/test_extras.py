"""The optional extras stay optional: with gevent, prometheus-client and OpenTelemetry hidden, every core module
imports and a broker round trip works; the modules of the extras say which extra to install."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from .conftest import ROOT

HIDE = """
import importlib.abc, sys
HIDDEN = {"gevent", "prometheus_client", "opentelemetry", "jsonschema", "playwright"}  # the last two: dev only
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            raise ImportError(f"{name} is hidden by the test")
        return None
sys.meta_path.insert(0, Hide())
"""

CORE = """
import pkgutil, importlib
import flask_multi_redis
EXTRAS = {"flask_multi_redis.metrics", "flask_multi_redis.tracing"}
for module in pkgutil.walk_packages(flask_multi_redis.__path__, "flask_multi_redis."):
    if module.name not in EXTRAS:
        importlib.import_module(module.name)
from flask import Flask
from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Channel
echo = Channel("echo")
app = Flask("core")
app.config["REDIS"] = {"URL": sys.argv[1], "PREFIX": "extras"}
redis = FlaskRedisSingle(app)
redis.broker.handler(echo)(lambda message: message)
with app.app_context():
    assert redis.broker.wait_ready(10)
    assert redis.broker.request(echo, {"x": 1}, timeout=5) == {"x": 1}
    redis.broker.stop()
for name, extra in (("metrics", "metrics"), ("tracing", "otel")):
    try:
        importlib.import_module(f"flask_multi_redis.{name}")
    except ImportError as exc:
        assert f"pip install '.[{extra}]'" in str(exc), exc
    else:
        raise AssertionError(f"flask_multi_redis.{name} imported without its extra")
print("core ok")
"""


def test_the_core_without_the_extras(redis_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", HIDE + CORE, redis_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "core ok"


def test_the_wheel_carries_the_files_beside_the_code(tmp_path: Path) -> None:
    """``pip install .`` gets the dashboard's page and the py.typed marker, not only the modules."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("flask_multi_redis-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"flask_multi_redis/dashboard.html", "flask_multi_redis/py.typed"} <= names
