"""Find a Redis for the examples: the one at REDIS_URL, or a throwaway redis-server started from PATH."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import redis

INSTALL_HINT = (
    "No Redis to talk to: REDIS_URL is not set (or not reachable) and redis-server is not on PATH.\n"
    "Install Redis (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)\n"
    "or point REDIS_URL at a running server, e.g. REDIS_URL=redis://localhost:6379/0"
)


def _reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping())
    except (redis.RedisError, ValueError):
        return False


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def local_redis() -> Iterator[str]:
    """Yield a Redis URL: REDIS_URL when it answers, else a redis-server of our own, stopped on exit."""
    url = os.environ.get("REDIS_URL")
    if url and _reachable(url):
        print(f"using the Redis at REDIS_URL ({url.rpartition('@')[2]})")
        yield url
        return
    with throwaway_redis() as url:
        print(f"started a throwaway redis-server on port {url.rpartition(':')[2]}")
        yield url


@contextlib.contextmanager
def throwaway_redis() -> Iterator[str]:
    """Yield the URL of a new redis-server from PATH on a free loopback port (no persistence), stopped on exit."""
    executable = shutil.which("redis-server")
    if executable is None:
        print(INSTALL_HINT, file=sys.stderr)
        raise SystemExit(2)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="flask-multi-redis-") as folder:
        command = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        server = subprocess.Popen([*command, "--dir", folder], stdout=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 10
            while not _reachable(url):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"redis-server did not start on port {port}")
                time.sleep(0.05)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=10)
