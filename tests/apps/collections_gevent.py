"""Typed collections in a gevent-patched process, as a gunicorn gevent worker runs them: a greenlet blocks in a
queue's get while ten others each append ten numbers and update a hash, then one put wakes it. Prints what each
ended with, as JSON.

python -m tests.apps.collections_gevent redis://127.0.0.1:1111
"""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402 - after patching, as a gevent worker does
import sys  # noqa: E402

import gevent  # noqa: E402
import redis  # noqa: E402

from flask_multi_redis.collections import RedisHash, RedisList, RedisQueue  # noqa: E402


def main() -> None:
    client = redis.Redis.from_url(sys.argv[1], socket_timeout=5)
    numbers, counts, inbox = (
        RedisList(client, "g:numbers", int),
        RedisHash(client, "g:counts", int),
        RedisQueue(client, "g:inbox", str),
    )
    for collection in (numbers, counts, inbox):
        collection.clear()
    got: list[str] = []
    waiter = gevent.spawn(lambda: got.append(inbox.get(timeout=20)))

    def job(n: int) -> None:
        for step in range(10):
            numbers.append(n * 10 + step)
            gevent.sleep(0)
        counts.update({f"job-{n}": 10})

    gevent.joinall([gevent.spawn(job, n) for n in range(10)], timeout=20)
    appended_while_waiting = not waiter.dead  # the blocking get held its greenlet only, not the process
    inbox.put("wake")
    waiter.join(20)
    print(
        json.dumps(
            {
                "numbers": sorted(numbers),
                "counts": counts.todict(),
                "got": got,
                "appended_while_waiting": appended_while_waiting,
            }
        )
    )


if __name__ == "__main__":
    main()
