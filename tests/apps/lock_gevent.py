"""Ten greenlets, ten increments each, under one Redlock over the servers named on the command line, in a
gevent-patched process; prints the numbers the list ends with, as JSON.

python -m tests.apps.lock_gevent redis://127.0.0.1:1111 redis://127.0.0.1:2222 ...
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402 - after patching, as a gevent worker does
import sys  # noqa: E402

import gevent  # noqa: E402
import redis  # noqa: E402

from flask_multi_redis.lock import Redlock  # noqa: E402


def main() -> None:
    masters = [redis.Redis.from_url(url, socket_timeout=1) for url in sys.argv[1:]]
    store = masters[0]
    store.delete("numbers")

    def job() -> None:
        lock = Redlock("numbers-lock", masters, ttl=5, timeout=30)
        for _ in range(10):
            with lock:
                last = store.lindex("numbers", -1)
                gevent.sleep(0.002)  # the work the lock protects: the other greenlets run meanwhile
                store.rpush("numbers", int(last) + 1 if last is not None else 1)

    gevent.joinall([gevent.spawn(job) for _ in range(10)], timeout=60)
    print(json.dumps([int(n) for n in store.lrange("numbers", 0, -1)]))


if __name__ == "__main__":
    main()
