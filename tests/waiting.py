"""Waiting on a condition with a deadline: what the tests do instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.01) -> None:
    """Poll ``condition`` until it is true; fail the test with its description after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"condition not met within {timeout} s: {getattr(condition, '__doc__', None) or condition}"
            )
        time.sleep(interval)


async def settled(timeout: float = 10.0) -> None:
    """Wait for every other task of the running loop to end (calls a lock or a collection goes on with in the
    background), so that closing the clients after it leaves no connection open."""
    deadline = time.monotonic() + timeout
    while others := asyncio.all_tasks() - {asyncio.current_task()}:  # a task that ends may have started others
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"{len(others)} task(s) still running after {timeout} s")
        await asyncio.wait(others, timeout=left)
