"""Small apps for tests/test_preload_gevent.py, served by real gunicorn workers.

Configured from the environment: REDIS_URL (a test server, or a sentinel / cluster URL) and REDIS_PREFIX;
LOCK_URLS: the servers of /lock's Redlock, separated by spaces.
"""

from __future__ import annotations

import faulthandler
import os
import signal

import redis
from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.lock import Redlock


def create_app() -> Flask:
    faulthandler.register(signal.SIGRTMIN + 2)  # a hung worker's stack, for whoever looks into a failure
    app = Flask("preload_gevent")
    app.config["REDIS"] = {"URL": os.environ["REDIS_URL"], "PREFIX": os.environ.get("REDIS_PREFIX", "test")}
    ext = FlaskRedisSingle(app)
    urls = os.environ.get("LOCK_URLS", "").split()
    masters = [redis.Redis.from_url(url, socket_timeout=1) for url in urls]

    @app.get("/pid")
    def pid() -> ResponseReturnValue:
        return jsonify(pid=os.getpid())

    @app.get("/lock")
    def lock() -> ResponseReturnValue:
        """Take and release a Redlock, as a view that guards some work does."""
        with Redlock("review-lock", masters, ttl=5, timeout=5) as held:
            token = held.token
        return jsonify(pid=os.getpid(), token=token)

    @app.get("/get")
    def get() -> ResponseReturnValue:
        """One command through the extension's session (its first use in the worker makes its connection)."""
        value = ext.getRedis().get("review-key")
        return jsonify(pid=os.getpid(), value=value.decode() if isinstance(value, bytes) else value)

    return app
