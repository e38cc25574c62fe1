"""Run under gevent (it patches first): what redis-py's readiness checks do with flask_multi_redis.gevent_io,
printed as one JSON object. ``python -m tests.apps.gevent_io_check URL [off]`` (off: without the change)."""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import select  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import greenlet  # noqa: E402
import redis  # noqa: E402
import redis._parsers.hiredis as parser  # noqa: E402

from flask_multi_redis import FlaskRedisSingle  # noqa: E402


def until(condition: Any, timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        gevent.sleep(0.001)
    return True


def main() -> None:
    url = sys.argv[1]
    ext = FlaskRedisSingle({"URL": url})  # making its clients installs the change
    client = ext.getRedis()
    if sys.argv[2:] == ["off"]:
        setattr(parser, "select", select)  # redis-py as it is  # noqa: B010
    out: dict[str, Any] = {"installed": type(getattr(parser, "select")).__name__}  # noqa: B009
    connection = client.connection_pool.get_connection()
    connection.send_command("CLIENT", "ID")  # type: ignore[no-untyped-call]
    client_id = connection.read_response()

    switches = [0]
    previous = greenlet.settrace(lambda event, args: switches.__setitem__(0, switches[0] + 1))
    idle = [connection.can_read() for _ in range(100)]
    greenlet.settrace(previous)
    out["idle"], out["switches_in_100_idle_checks"] = any(idle), switches[0]

    connection.send_command("PING")  # type: ignore[no-untyped-call]  # a reply left unread: the pool must not lend the connection as it is
    out["unread_reply_seen"] = until(connection.can_read)
    out["unread_reply"] = connection.read_response().decode()
    out["idle_after_reading"] = connection.can_read()

    with redis.Redis.from_url(url) as other:
        other.client_kill_filter(_id=client_id)

    def closed() -> str | None:
        try:
            return "readable" if connection.can_read() else None
        except redis.ConnectionError as exc:
            return f"ConnectionError: {exc}"

    out["server_close_seen"] = until(closed) and closed()
    client.connection_pool.release(connection)
    out["ping_after_close"] = client.ping()  # the pool saw the closed connection and made a new one

    with client.pubsub() as pubsub:  # a wait with a timeout still lets other greenlets run
        pubsub.subscribe("news")
        pubsub.get_message(timeout=5)
        publisher = gevent.spawn_later(0.05, lambda: redis.Redis.from_url(url).publish("news", "hi"))
        message = pubsub.get_message(timeout=5)
        out["message_during_wait"] = message["data"].decode() if message else None
        publisher.join()
    print(json.dumps(out))


main()
