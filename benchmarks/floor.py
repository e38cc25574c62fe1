"""The floor: a hand-written request/reply ``add(a, b)`` with plain redis-py, no framework.

The responder (its own process, single-threaded, no gevent) subscribes to a request channel and, for each JSON
request, LPUSHes ``{"id", "result": a + b}`` onto the request's own reply list and PEXPIREs it, in one pipeline.
The caller PUBLISHes the JSON request and BLPOPs that reply list. Every caller is a child process of its own:
``sequential`` is a plain loop, ``concurrent-C`` is one gevent-patched process with C greenlets sharing the calls.

This module also holds the process plumbing :mod:`benchmarks.peers` reuses: :func:`running`,
:func:`wait_for_subscriber` and :func:`time_caller`.

Child entry points: ``python -m benchmarks.floor responder`` and ``python -m benchmarks.floor caller --n N``
(``REDIS_URL`` and ``BENCH_CHANNEL`` from the environment).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

import redis

from benchmarks.common import CPU_PIDS, ROOT, Result, child_env, python, redis_pid, run_json, summarize

SYSTEM = "floor"
REPLY_TTL_MS = 30_000
STOP_TIMEOUT_S = 15.0


# --- process plumbing, shared with benchmarks.peers ---------------------------------------------------------------


def _tail(log: IO[bytes], limit: int = 3000) -> str:
    log.seek(0, os.SEEK_END)
    log.seek(max(0, log.tell() - limit))
    return log.read().decode(errors="replace")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running(argv: Sequence[str], env: dict[str, str], label: str) -> Iterator[subprocess.Popen[bytes]]:
    """A background process (worker, responder) for the block: terminated and reaped at its end, even on errors.

    Its output goes to a temporary file, whose end an error in the block quotes.
    """
    with tempfile.TemporaryFile(prefix="fmr-bench-") as log:
        process = subprocess.Popen(
            list(argv), env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield process
        except Exception as exc:
            _stop(process)
            raise RuntimeError(
                f"{exc}\n--- last output of {label} (exit {process.returncode}) ---\n{_tail(log)}"
            ) from exc
        finally:
            _stop(process)


def wait_for_subscriber(url: str, channel: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Return once something subscribes to ``channel`` (a PUBLISH before that is lost); fail if ``process`` exits."""
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    try:
        while not client.pubsub_numsub(channel)[0][1]:
            if process.poll() is not None:
                raise RuntimeError(f"the process exited ({process.returncode}) before subscribing to {channel}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing subscribed to {channel} within {timeout} s")
            time.sleep(0.02)  # polling interval of a condition with a deadline
    finally:
        client.close()


def time_caller(
    system: str,
    child: Sequence[str],
    env: dict[str, str],
    n: int,
    concurrency: int = 0,
    *,
    gevent: bool = True,
    **extra: Any,
) -> Result:
    """Time ``n`` calls from one caller child ``python -m *child``: scenario ``sequential`` (a plain loop) if
    ``concurrency`` is 0, else ``concurrent-C``: C greenlets in a gevent-patched child (or C asyncio tasks when
    ``gevent`` is false, for an asyncio caller)."""
    argv = [python(), "-m"]
    if concurrency and gevent:
        argv += ["benchmarks.peer_apps.under_gevent"]
    argv += [*child, "--n", str(n), "--concurrency", str(concurrency)]
    data = run_json(argv, env)
    scenario = f"concurrent-{concurrency}" if concurrency else "sequential"
    if data.get("cpu_us_per_call"):
        extra["cpu_us_per_call"] = data["cpu_us_per_call"]
    return summarize(system, scenario, data["latencies_s"], data["elapsed_s"], **extra)


# --- the floor itself -------------------------------------------------------------------------------------------


def run(url: str, n_seq: int, n_conc: int, concurrencies: tuple[int, ...]) -> list[Result]:
    """Time the floor: ``sequential`` (``n_seq`` calls) and ``concurrent-C`` (``n_conc`` calls) for each C."""
    channel = f"bench:floor:{uuid.uuid4().hex[:12]}"
    env = child_env(url, BENCH_CHANNEL=channel)
    child = ["benchmarks.floor", "caller"]
    worker: dict[str, Any] = {"responder": "redis-py, 1 process, single-threaded", "encoding": "json"}
    with running([python(), "-m", "benchmarks.floor", "responder"], env, "floor responder") as responder:
        wait_for_subscriber(url, channel, responder)
        measured = {**env, CPU_PIDS: f"server={responder.pid},redis={redis_pid(url)}"}
        results = [time_caller(SYSTEM, child, measured, n_seq, **worker, caller="plain loop")] if n_seq else []
        for concurrency in concurrencies:
            results.append(time_caller(SYSTEM, child, env, n_conc, concurrency, **worker, caller="gevent greenlets"))
    return results


def work_of(client: redis.Redis) -> Callable[[], object]:
    """What a responder does for each request before it answers: the same work (``BENCH_WORK``) as the handler
    it is compared with (:data:`benchmarks.bench_app.WORK`), with redis-py's ``client`` for the Redis command."""
    work = os.environ.get("BENCH_WORK", "none")
    if work == "incr":
        return lambda: client.incr("bench:handled")
    if work == "nap":
        return lambda: time.sleep(0.001)
    return lambda: None


def responder(url: str, channel: str) -> None:
    """Answer every request on ``channel`` until terminated, one at a time."""
    client = redis.Redis.from_url(url)
    subscription = client.pubsub(ignore_subscribe_messages=True)
    subscription.subscribe(channel)
    work = work_of(client)
    for message in subscription.listen():  # type: ignore[no-untyped-call]
        request = json.loads(message["data"])
        work()
        reply = json.dumps({"id": request["id"], "result": request["a"] + request["b"]})
        pipeline = client.pipeline(transaction=False)
        pipeline.lpush(request["reply_to"], reply)
        pipeline.pexpire(request["reply_to"], REPLY_TTL_MS)
        pipeline.execute()


def caller(url: str, channel: str, argv: Sequence[str]) -> None:
    """The timed caller: PUBLISH a request, BLPOP its reply list (see :mod:`benchmarks.peer_apps.driver`)."""
    from benchmarks.peer_apps import driver

    client = redis.Redis.from_url(url)

    def call(i: int, timeout: float) -> None:
        request_id = uuid.uuid4().hex
        reply_to = f"bench:floor:reply:{request_id}"
        if not client.publish(channel, json.dumps({"id": request_id, "reply_to": reply_to, "a": i, "b": 1})):
            raise RuntimeError(f"no responder on {channel}")
        popped = client.blpop([reply_to], timeout=timeout)
        if popped is None:
            raise TimeoutError(f"no reply to request {i} within {timeout} s")
        driver.check(i, json.loads(popped[1])["result"])

    driver.main(call, argv)


def child_main(module: str, serve: Callable[[str, str], None], call: Callable[[str, str, Sequence[str]], None]) -> None:
    """The entry point of a floor's child process: ``responder`` or ``caller [--n N --concurrency C]``, with
    ``REDIS_URL`` and ``BENCH_CHANNEL`` from the environment."""
    role, *rest = sys.argv[1:]
    url, channel = os.environ["REDIS_URL"], os.environ["BENCH_CHANNEL"]
    if role == "responder":
        serve(url, channel)
    elif role == "caller":
        call(url, channel, rest)
    else:
        raise SystemExit(f"usage: python -m {module} responder|caller [--n N --concurrency C], not {role!r}")


if __name__ == "__main__":
    child_main("benchmarks.floor", responder, caller)
