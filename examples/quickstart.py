"""A short tour: two named databases from Flask config, then a request and its reply over pub/sub.

Run it with ``make demo`` (or ``python examples/quickstart.py``): it uses the Redis at REDIS_URL, or starts a
throwaway redis-server from PATH.
"""

from __future__ import annotations

import threading

from flask import Flask, current_app
from local_redis import local_redis
from pydantic import BaseModel

from flask_multi_redis import FlaskRedisMulti


class Sum(BaseModel):
    total: int


def responder(app: Flask, ready: threading.Event) -> None:
    """Answer one request on 'math.add' by publishing the sum to the reply channel it names."""
    with app.app_context():
        session = current_app.extensions["redis"].getRedis("Jobs")
        requests = session.subscribe("math.add")
        ready.set()
        request = session.wait_for_reply(requests, dict, timeout=10)
        session.publish(request["reply_to"], Sum(total=request["a"] + request["b"]))
        requests.close()


def main() -> None:
    with local_redis() as url:
        app = Flask(__name__)
        app.config["REDIS"] = {"URL": url, "PREFIX": "demo", "DATABASES": {"General": 0, "Jobs": 1}}
        FlaskRedisMulti(app)

        with app.app_context():
            redis = current_app.extensions["redis"]
            general = redis.getRedis("General")
            general.set("greeting", "hello from database 0")
            print("General:", general.get("greeting").decode(), "| Jobs sees:", redis.getRedis("Jobs").get("greeting"))

            ready = threading.Event()
            worker = threading.Thread(target=responder, args=(app, ready), daemon=True)
            worker.start()
            ready.wait(timeout=10)

            jobs = redis.getRedis("Jobs")
            replies = jobs.subscribe("replies.quickstart")
            receivers = jobs.publish("math.add", {"a": 20, "b": 22, "reply_to": "replies.quickstart"})
            answer = jobs.wait_for_reply(replies, Sum, timeout=5)
            print(f"request reached {receivers} listener(s); reply: {answer!r}")
            replies.close()
            worker.join(timeout=5)

        result = app.test_cli_runner().invoke(args=["redis", "ping"])
        print("flask redis ping:\n" + result.output.rstrip())
        print("quickstart finished: OK")


if __name__ == "__main__":
    main()
