"""NATS responder of the benchmark (nats-py): ``add`` on the subject ``$BENCH_SUBJECT``, with the same pydantic
validation at both ends as flask-multi-redis does (the request parsed as AddIn, the reply written from AddOut).

Run: ``python -m benchmarks.peer_apps.nats_app`` with ``NATS_URL``; it prints ``ready`` once subscribed.
"""

from __future__ import annotations

import asyncio
import os

import nats
from nats.aio.msg import Msg

from benchmarks.bench_app import AddIn, AddOut


async def main() -> None:
    client = await nats.connect(os.environ["NATS_URL"])

    async def add(message: Msg) -> None:
        request = AddIn.model_validate_json(message.data)
        await message.respond(AddOut(result=request.a + request.b).model_dump_json().encode())

    await client.subscribe(os.environ["BENCH_SUBJECT"], cb=add)
    await client.flush()
    print("ready", flush=True)
    await asyncio.Event().wait()  # until terminated


if __name__ == "__main__":
    asyncio.run(main())
