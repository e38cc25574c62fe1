"""Real processes the tests run and watch: backend workers, web servers, command lines; fixtures for them."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.local_redis import free_port

from .waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent

WORKER = str(Path(sys.executable).parent / "flask-redis-worker")
APP = "tests.apps.svc:create_app()"


class WorkerProcess:
    """A worker process whose log lines (stderr) are collected as they come."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(argv, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def wait_for_log(self, text: str, timeout: float = 20) -> None:
        wait_until(lambda: text in self.log or self.process.poll() is not None, timeout=timeout)
        assert text in self.log, self.log

    def finish(self, timeout: float = 20) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code


@pytest.fixture
def start_worker(broker_env: dict[str, str]) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``flask-redis-worker`` (or another command) with the given arguments; killed at teardown."""
    started: list[WorkerProcess] = []

    def start(*args: str, command: tuple[str, ...] = (WORKER, APP), ready: bool = True) -> WorkerProcess:
        worker = WorkerProcess([*command, *args], broker_env)
        started.append(worker)
        if ready:
            worker.wait_for_log(" ready: ")
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.kill()
        worker.finish()


def start_serve(env: dict[str, str]) -> subprocess.Popen[str]:
    """A tests/apps/serve.py process (it serves svc.backend), once it says it is ready."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.apps.serve"], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.split() == ["ready", str(process.pid)], f"serve.py did not start: {line!r}"
    return process


def stop_serve(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(10)
    assert process.stdout is not None
    process.stdout.close()


def run_cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def parent_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))


class Served:
    """A running web server process tree, and how to reach it."""

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port

    def get(self, path: str) -> dict[str, object]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def answers(self) -> bool:
        try:
            self.get("/pid")
        except OSError:
            return False
        return True


@pytest.fixture
def serve_web(broker_env: dict[str, str]) -> Iterator[Callable[..., Served]]:
    """Start a web server on the svc app (gunicorn, or flask run); stopped at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*command: str) -> Served:
        port = free_port()
        argv = [arg.replace("{port}", str(port)) for arg in command]
        process = subprocess.Popen([sys.executable, "-m", *argv], env=broker_env, cwd=ROOT)
        started.append(process)
        served = Served(process, port)
        wait_until(served.answers, timeout=20)
        return served

    yield start
    for process in started:
        process.terminate()
    for process in started:
        process.wait(20)


def probe(url: str) -> tuple[int, dict[str, Any]]:
    """The status and JSON body of a GET of ``url`` (a health endpoint), error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return int(error.code), json.loads(error.read())
