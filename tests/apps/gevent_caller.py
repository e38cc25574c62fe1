"""A gevent process with many requests in flight at once; prints how they ended and the connections it held.

Usage: python -m tests.apps.gevent_caller COUNT GATE_KEY (environment as for svc.py).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402 - after patching, as a gevent program must
import os  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.pool import Pool  # noqa: E402

from flask_multi_redis import FlaskRedisSingle  # noqa: E402
from tests.apps.svc import Gate, gate  # noqa: E402


def main() -> None:
    count, gate_key = int(sys.argv[1]), sys.argv[2]
    ext = FlaskRedisSingle({"URL": os.environ["REDIS_URL"], "PREFIX": os.environ["REDIS_PREFIX"]})
    runtime = ext.broker.start(timeout=10)
    calls = Pool(count)
    results = [calls.spawn(ext.broker.request, gate, Gate(key=gate_key, timeout=30), timeout=60) for _ in range(count)]

    def in_flight() -> int:  # waiting on the inbox, and the one waiting on its own reply list
        return ext.broker.health().waiting_calls

    while in_flight() < count:  # every request is published and waiting for its reply
        gevent.sleep(0.01)
    waiting = in_flight()
    own = f"flask-redis:{runtime.sender.id}"
    held = sum(1 for client in ext.getRedis().client_list() if client.get("name") == own)
    ext.getRedis().rpush(gate_key, *range(count))  # now let the handlers answer
    calls.join()
    print(
        json.dumps(
            {
                "in_flight": waiting,
                "ok": sum(1 for result in results if result.successful()),
                "connections": held,
            }
        ),
        flush=True,
    )
    ext.broker.stop()


if __name__ == "__main__":
    main()
