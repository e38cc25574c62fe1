"""The handler pool: a fixed number of workers fed by a bounded queue."""

from __future__ import annotations

import threading

import pytest

from flask_multi_redis.broker.pool import HandlerPool

from .waiting import wait_until


class Blocking:
    """Jobs that wait for ``release``; ``running`` counts those started, ``ran`` names the threads that ran them."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.running = threading.Semaphore(0)
        self.ran: list[str] = []

    def job(self) -> None:
        self.running.release()
        self.release.wait(10)
        self.ran.append(threading.current_thread().name)


def test_jobs_run_on_the_pools_workers_at_most_size_at_once() -> None:
    pool = HandlerPool(size=2, max_pending=10, name="test-pool")
    jobs = Blocking()
    for _ in range(3):
        assert pool.submit(jobs.job)
    assert jobs.running.acquire(timeout=5)
    assert jobs.running.acquire(timeout=5)
    assert pool.in_flight == 3  # two running, one waiting for a worker
    jobs.release.set()
    assert pool.join(5)
    assert set(jobs.ran) <= {"test-pool-0", "test-pool-1"}
    assert len(jobs.ran) == 3
    assert pool.in_flight == 0


def test_a_full_queue_refuses_a_job() -> None:
    pool = HandlerPool(size=1, max_pending=2)
    jobs = Blocking()
    assert pool.submit(jobs.job)
    assert jobs.running.acquire(timeout=5)  # it runs: the queue is empty again
    assert pool.submit(jobs.job)
    assert pool.submit(jobs.job)
    assert not pool.submit(jobs.job)  # two wait already
    jobs.release.set()
    assert pool.join(5)
    assert len(jobs.ran) == 3


def test_join_gives_up_at_its_timeout_and_refuses_new_jobs() -> None:
    pool = HandlerPool(size=1, max_pending=5)
    jobs = Blocking()
    assert pool.submit(jobs.job)
    assert jobs.running.acquire(timeout=5)
    assert not pool.join(0.2)  # the job is still running
    assert not pool.submit(jobs.job)  # closing
    jobs.release.set()
    wait_until(lambda: jobs.ran)


def test_queued_jobs_can_run_in_the_callers_thread() -> None:
    """What a draining owner does, so that the callers of queued work need not wait for a busy worker."""
    pool = HandlerPool(size=1, max_pending=5)
    jobs = Blocking()
    assert pool.submit(jobs.job)
    assert jobs.running.acquire(timeout=5)
    here: list[str] = []
    for _ in range(2):
        assert pool.submit(lambda: here.append(threading.current_thread().name))
    pool.run_queued_here()
    assert here == [threading.current_thread().name] * 2
    assert pool.in_flight == 1  # only the running one
    jobs.release.set()
    assert pool.join(5)


def test_a_job_that_raises_is_logged_and_the_worker_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    pool = HandlerPool(size=1, max_pending=5, name="test-pool")
    done = threading.Event()

    def fails() -> None:
        raise RuntimeError("on purpose")

    assert pool.submit(fails)
    assert pool.submit(done.set)
    assert done.wait(5)
    assert pool.join(5)
    assert "a job in test-pool raised" in caplog.text


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="size >= 1"):
        HandlerPool(size=0, max_pending=1)
