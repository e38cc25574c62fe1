"""gevent is an extra: without it the package, the broker and the thread pool work, and asking for the gevent
pool is one line that says what to install.

The tests hide gevent by putting tests/apps/without_gevent first on the path, where ``import gevent`` fails as
it does where gevent is not installed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from flask_multi_redis import FlaskRedisSingle

from .apps.svc import AddIn, add
from .conftest import ROOT
from .processes import APP, WORKER, WorkerProcess, run_cli

HIDDEN = ROOT / "tests" / "apps" / "without_gevent"


@pytest.fixture
def env(broker_env: dict[str, str]) -> dict[str, str]:
    return {**broker_env, "PYTHONPATH": f"{HIDDEN}:{ROOT}"}


def test_the_fixture_hides_gevent(env: dict[str, str]) -> None:
    done = run_cli(env, sys.executable, "-c", "import gevent")
    assert "No module named 'gevent'" in done.stderr


@pytest.mark.parametrize(
    "command",
    [(WORKER, APP, "-P", "gevent"), (sys.executable, "-m", "flask", "--app", APP, "redis", "worker", "--pool=gevent")],
    ids=["flask-redis-worker", "flask redis worker"],
)
def test_the_gevent_pool_without_gevent_is_one_line_saying_what_to_install(
    env: dict[str, str], command: tuple[str, ...]
) -> None:
    done = run_cli(env, *command, "--check")
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error")]
    assert errors == [
        "Error: Invalid value for '--pool': gevent is not installed: pip install gevent "
        "(or pip install '.[gevent]' in a clone of flask-multi-redis)"
    ]
    assert "Traceback" not in done.stderr


def test_a_worker_built_in_python_says_what_to_install(env: dict[str, str]) -> None:
    code = (
        "from flask_multi_redis.worker import Worker\n"
        "from flask_multi_redis.worker.worker import WorkerError\n"
        "from tests.apps.svc import create_app\n"
        "try:\n"
        "    Worker(create_app, pool='gevent')\n"
        "except WorkerError as exc:\n"
        "    print(exc)\n"
    )
    done = run_cli(env, sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("gevent is not installed: pip install gevent")


@pytest.fixture
def worker_without_gevent(env: dict[str, str]) -> Iterator[WorkerProcess]:
    worker = WorkerProcess([WORKER, APP, "--router", "tests.apps.svc:backend"], env)
    worker.wait_for_log(" ready: ")
    yield worker
    worker.process.terminate()
    assert worker.finish() == 0


def test_the_thread_pool_serves_without_gevent(worker_without_gevent: WorkerProcess, caller: FlaskRedisSingle) -> None:
    out = caller.broker.request(add, AddIn(a=2, b=3), timeout=5)
    assert (out.sum, out.pid) == (5, worker_without_gevent.pid)
    assert (
        "gevent"
        not in subprocess.run(
            [sys.executable, "-c", f"print(open('/proc/{worker_without_gevent.pid}/maps').read())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )  # no part of gevent is loaded in it
