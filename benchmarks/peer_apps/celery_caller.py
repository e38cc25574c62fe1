"""Celery caller: ``add.delay(i, 1).get()`` (the reply comes through the Redis result backend's pub/sub)."""

from __future__ import annotations

from benchmarks.peer_apps import driver
from benchmarks.peer_apps.celery_tasks import add


def call(i: int, timeout: float) -> None:
    driver.check(i, add.delay(i, 1).get(timeout=timeout))


if __name__ == "__main__":
    driver.main(call)
