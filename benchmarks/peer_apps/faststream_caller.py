"""FastStream caller: ``await broker.request(...)`` (a fresh reply channel subscription per request), asyncio tasks."""

from __future__ import annotations

import asyncio
import os

from faststream.redis import RedisBroker

from benchmarks.peer_apps import driver

CHANNEL = os.environ["BENCH_CHANNEL"]


async def main() -> None:
    # each request in flight holds a pub/sub connection for its reply and, while publishing, a second one:
    # redis-py's default pool of 100 runs out at 64 tasks
    async with RedisBroker(os.environ["REDIS_URL"], max_connections=512) as broker:

        async def call(i: int, timeout: float) -> None:
            reply = await broker.request({"a": i, "b": 1}, channel=CHANNEL, timeout=timeout)
            driver.check(i, (await reply.decode())["result"])

        await driver.amain(call)


if __name__ == "__main__":
    asyncio.run(main())
