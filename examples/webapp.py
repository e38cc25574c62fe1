"""The demo's web app: run it under gunicorn (``gunicorn -k gevent -w 4 'examples.webapp:create_app()'``).

Each gunicorn worker keeps its own settings; the ``config.reload`` command updates them in every worker at once.
``/sum`` asks the backend worker (examples/backend.py) to add two numbers.
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, request

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import NoResponders, RemoteError, RequestTimeout

from .channels import AddIn, Reload, ReloadAck, config_reload, math_add

redis = FlaskRedisSingle()
settings: dict[str, str] = {"greeting": "hello"}  # per process: what config.reload changes


@redis.broker.command(config_reload)
def reload_settings(message: Reload) -> ReloadAck:
    settings.update(message.values)
    return ReloadAck(pid=os.getpid(), settings=settings)


def create_app() -> Flask:
    app = Flask("demo")
    app.config["REDIS"] = {"URL": os.environ.get("REDIS_URL", "redis://localhost:6379/0"), "PREFIX": "demo"}
    redis.init_app(app)

    @app.get("/settings")
    def show_settings() -> object:
        return jsonify(pid=os.getpid(), settings=settings)

    @app.get("/sum")
    def add_numbers() -> object:
        numbers = AddIn(a=int(request.args.get("a", 0)), b=int(request.args.get("b", 0)))
        try:
            out = redis.broker.request(math_add, numbers, timeout=5)
        except (NoResponders, RequestTimeout, RemoteError) as exc:
            return jsonify(error=f"{type(exc).__name__}: {exc}"), 503
        return jsonify(sum=out.sum, served_by=out.served_by, web_pid=os.getpid())

    return app
