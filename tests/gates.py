"""Requests held in flight: each waits in svc's gate handler until the test pushes to the gate's key."""

from __future__ import annotations

import threading

from flask_multi_redis import FlaskRedisSingle

from .apps.svc import Gate, gate


def call_at_gate(
    caller: FlaskRedisSingle, key: str, count: int, timeout: float = 10
) -> tuple[list[threading.Thread], list[object]]:
    """Start ``count`` gate requests in threads; each appends its reply, or the error it raised, to the list."""
    results: list[object] = []

    def call() -> None:
        try:
            results.append(caller.broker.request(gate, Gate(key=key), timeout=timeout))
        except Exception as exc:
            results.append(exc)

    threads = [threading.Thread(target=call) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results
