"""NATS caller: ``await client.request(subject, AddIn)`` (nats-py's shared reply inbox), the reply validated as
AddOut; asyncio tasks for the concurrent scenarios."""

from __future__ import annotations

import asyncio
import os
import time

import nats
from nats.errors import NoRespondersError

from benchmarks.bench_app import AddIn, AddOut
from benchmarks.peer_apps import driver


async def main() -> None:
    client = await nats.connect(os.environ["NATS_URL"])
    subject = os.environ["BENCH_SUBJECT"]

    async def call(i: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = await client.request(subject, AddIn(a=i, b=1).model_dump_json().encode(), timeout=timeout)
                break
            except NoRespondersError:  # the responder is not subscribed yet: only the first call meets this
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.01)
        driver.check(i, AddOut.model_validate_json(reply.data).result)

    await driver.amain(call)
    await client.close()


if __name__ == "__main__":
    asyncio.run(main())
