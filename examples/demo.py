"""The whole system on this machine: Redis, the web app under gunicorn (4 gevent workers) and one backend
worker. It shows a broadcast reaching every web worker, an RPC served by the backend worker, and the table of
live processes, then shuts everything down. ``make demo`` runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.channels import Reload, config_reload  # noqa: E402
from examples.local_redis import free_port, local_redis  # noqa: E402
from flask_multi_redis import FlaskRedisSingle  # noqa: E402

WEB_WORKERS = 4
APP = "examples.webapp:create_app()"
BIN = Path(sys.executable).parent


def wait_for(what: str, condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"demo failed: {what} did not happen within {timeout:.0f} s")
        time.sleep(0.1)


def check(condition: bool, failure: str) -> None:
    if not condition:
        raise SystemExit(f"demo failed: {failure}")


def get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def main() -> None:
    with local_redis() as url:
        env = {**os.environ, "REDIS_URL": url, "PYTHONPATH": str(ROOT)}
        port = free_port()
        web = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "-k",
                "gevent",
                "-w",
                str(WEB_WORKERS),
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                APP,
            ],
            cwd=ROOT,
            env=env,
        )
        worker = subprocess.Popen(
            [str(BIN / "flask-redis-worker"), APP, "--router", "examples.backend:router", "--log-level", "warning"],
            cwd=ROOT,
            env=env,
        )
        client = FlaskRedisSingle({"URL": url, "PREFIX": "demo"})
        client.broker.role = "demo"  # this script listens for replies too, so it shows in the table
        try:
            broker = client.broker
            wait_for(
                "4 web workers and 1 backend worker registering", lambda: len(broker.processes()) == WEB_WORKERS + 1
            )
            print(f"gunicorn master {web.pid} with {WEB_WORKERS} gevent workers, backend worker {worker.pid}")

            acks = broker.broadcast(config_reload, Reload(values={"greeting": "hi there"}), gather=True, timeout=5)
            print(f"broadcast config.reload: {len(acks)} replies (every process that listens, the backend worker too)")
            for ack in sorted(acks, key=lambda ack: (ack.sender.role, ack.sender.pid) if ack.sender else ("", 0)):
                if ack.value is None or ack.sender is None:
                    raise SystemExit(f"demo failed: a reply failed: {ack.error}")
                print(f"  {ack.sender.role:<6} {ack.value.pid}: settings now {ack.value.settings}")
            web_pids = {ack.sender.pid for ack in acks if ack.sender and ack.sender.role == "web"}
            check(len(web_pids) == WEB_WORKERS, f"{len(web_pids)} web workers answered, not {WEB_WORKERS}")

            answer = get(f"http://127.0.0.1:{port}/sum?a=40&b=2")
            where = f"view in web worker {answer['web_pid']}, served by backend worker {answer['served_by']}"
            print(f"GET /sum?a=40&b=2 -> {answer['sum']} ({where})")
            check(answer["sum"] == 42, f"the sum came back as {answer['sum']}")
            check(answer["served_by"] == worker.pid, "the backend worker did not serve the request")

            table = subprocess.run(
                [sys.executable, "-m", "flask", "--app", APP, "redis", "workers"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
                check=True,
            )
            print("flask redis workers:")
            print(table.stdout, end="")
        finally:
            client.broker.stop()
            for process in (worker, web):
                process.send_signal(signal.SIGTERM)
            codes = [process.wait(30) for process in (worker, web)]
        if codes != [0, 0]:
            raise SystemExit(f"demo failed: exit codes worker={codes[0]} gunicorn={codes[1]}")
        print("demo finished: OK")


if __name__ == "__main__":
    main()
