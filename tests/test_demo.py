"""The README's main command (`make demo`), and the Docker files of the demo."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_make_demo_shows_the_whole_system_working() -> None:
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}  # its own throwaway server
    # -o: use this interpreter's environment as it is, rather than (re)building .venv
    done = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "demo", f"PY={sys.executable}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "started a throwaway redis-server" in out
    assert "broadcast config.reload: 5 replies" in out
    assert sum(1 for line in out.splitlines() if line.startswith("  web ") and "hi there" in line) == 4
    assert "GET /sum?a=40&b=2 -> 42" in out
    table = out[out.index("flask redis workers:") :].splitlines()
    assert table[1].split()[:3] == ["ROLE", "HOST", "PID"]
    assert [row.split()[0] for row in table[2:8]] == ["demo", "web", "web", "web", "web", "worker"]
    assert "6 live process(es)" in out
    assert out.rstrip().endswith("demo finished: OK")


def test_compose_file_has_a_protected_redis_the_web_app_and_a_worker() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"redis", "web", "worker"}
    assert "--requirepass" in services["redis"]["command"]
    web, worker = services["web"], services["worker"]
    assert web["command"][:5] == ["gunicorn", "-k", "gevent", "-w", "4"]
    assert web["command"][-1] == "examples.webapp:create_app()"
    assert worker["command"][:2] == ["flask-redis-worker", "examples.webapp:create_app()"]
    assert "examples.backend:router" in worker["command"]
    for service in (web, worker):
        assert service["environment"]["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD")
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["build"] == "."
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY examples ./examples" in dockerfile
    assert "pip install" in dockerfile
