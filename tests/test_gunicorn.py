"""The web tier under real gunicorn: every worker listens, the master never does, views call other processes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import Reply

from .apps.svc import Who, whoami
from .processes import Served, parent_of
from .waiting import wait_until

WORKERS = 4


def gather_pids(caller: FlaskRedisSingle, expected: int) -> list[Reply[Who]]:
    """Gather whoami until ``expected`` processes answer (workers subscribe in their own time after start)."""
    replies: list[Reply[Who]] = []

    def all_answer() -> bool:
        replies[:] = caller.broker.broadcast(whoami, None, gather=True, timeout=2)
        return len(replies) >= expected

    wait_until(all_answer, timeout=20)
    return replies


@pytest.mark.parametrize("preload", [False, True], ids=["no-preload", "preload"])
@pytest.mark.parametrize("worker_class", ["sync", "gthread", "gevent"])
def test_every_gunicorn_worker_answers_a_broadcast_and_the_master_does_not(
    serve_web: Callable[..., Served],
    spawn_backend: Callable[[], subprocess.Popen[str]],
    caller: FlaskRedisSingle,
    worker_class: str,
    preload: bool,
) -> None:
    check_web_tier(serve_web, spawn_backend, caller, worker_class, preload, "tests.apps.svc:create_app()")


def test_gevent_workers_listen_when_the_app_module_patches_first(
    serve_web: Callable[..., Served], spawn_backend: Callable[[], subprocess.Popen[str]], caller: FlaskRedisSingle
) -> None:
    check_web_tier(serve_web, spawn_backend, caller, "gevent", True, "tests.apps.svc_patched:create_app()")


def check_web_tier(
    serve_web: Callable[..., Served],
    spawn_backend: Callable[[], subprocess.Popen[str]],
    caller: FlaskRedisSingle,
    worker_class: str,
    preload: bool,
    app: str,
) -> None:
    """4 workers and a backend answer a gathered broadcast, the master does not; a view calls the backend."""
    backend = spawn_backend()
    options = ["--preload"] if preload else []
    web = serve_web("gunicorn", "-w", str(WORKERS), "-k", worker_class, *options, "-b", "127.0.0.1:{port}", app)
    replies = gather_pids(caller, WORKERS + 1)  # the 4 workers and the backend process
    assert len(replies) == WORKERS + 1
    assert all(reply.ok and reply.value is not None for reply in replies)
    pids = {reply.value.pid for reply in replies if reply.value}
    assert len(pids) == WORKERS + 1
    assert web.process.pid not in pids  # the master never answers
    worker_pids = pids - {backend.pid}
    assert {parent_of(pid) for pid in worker_pids} == {web.process.pid}
    assert {reply.value.app for reply in replies if reply.value} == {"svc"}  # handlers ran in the app context
    in_greenlets = {reply.value.pid for reply in replies if reply.value and reply.value.greenlet}
    assert in_greenlets == (worker_pids if worker_class == "gevent" else set())

    page = web.get("/add?a=2&b=40")  # a view's request, served by the backend process
    assert page["sum"] == 42
    assert page["served_by"] == backend.pid
    assert page["web"] in worker_pids


def test_flask_run_listens_in_the_reloader_child_only(
    serve_web: Callable[..., Served], caller: FlaskRedisSingle
) -> None:
    web = serve_web("flask", "--app", "tests.apps.svc:create_app()", "run", "--debug", "--port", "{port}")
    (reply,) = gather_pids(caller, 1)
    assert reply.value is not None
    assert reply.value.pid != web.process.pid
    assert parent_of(reply.value.pid) == web.process.pid  # the reloader's child serves, its parent does not
