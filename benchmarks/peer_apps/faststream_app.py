"""FastStream worker of the benchmark: ``add`` subscribed to the Redis pub/sub channel ``$BENCH_CHANNEL``.

Run: ``python -m benchmarks.peer_apps.faststream_app`` (what ``faststream run ...:app`` does, without its CLI extra).
``FASTSTREAM_MAX_WORKERS`` > 1 makes the subscriber handle that many messages at once (default: one at a time).
"""

from __future__ import annotations

import asyncio
import logging
import os

from faststream import FastStream
from faststream.redis import RedisBroker

CHANNEL = os.environ["BENCH_CHANNEL"]
MAX_WORKERS = int(os.environ.get("FASTSTREAM_MAX_WORKERS", "1"))

broker = RedisBroker(os.environ["REDIS_URL"], log_level=logging.DEBUG)  # per-message access log below INFO: silent
app = FastStream(broker)


@broker.subscriber(CHANNEL, max_workers=MAX_WORKERS if MAX_WORKERS > 1 else None)
async def add(body: dict[str, int]) -> dict[str, int]:
    return {"result": body["a"] + body["b"]}


if __name__ == "__main__":
    asyncio.run(app.run(log_level=logging.WARNING))
