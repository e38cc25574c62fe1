"""Throwaway redis-server processes for the tests, on free loopback ports, built on pytest-redis's executor.

Never the shared server on 6379: every test talks to servers started here, which it may stop, restart,
password-protect or put behind TLS.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import redis
import trustme
from port_for import get_port
from pytest_redis.executor import RedisExecutor


@dataclass(frozen=True)
class TLSFiles:
    """A CA and a server certificate for 127.0.0.1 / localhost, as PEM files."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def generate(cls, folder: Path, names: tuple[str, ...] = ("127.0.0.1", "localhost")) -> TLSFiles:
        """A new CA, and a server certificate it issued for ``names``."""
        folder.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        issued = ca.issue_cert(*names)
        files = cls(ca=folder / "ca.pem", cert=folder / "server.pem", key=folder / "server.key")
        ca.cert_pem.write_to_path(str(files.ca))
        issued.cert_chain_pems[0].write_to_path(str(files.cert))
        issued.private_key_pem.write_to_path(str(files.key))
        return files


@dataclass(frozen=True)
class ACLUser:
    name: str
    password: str


class RedisServer(RedisExecutor):
    """A redis-server the tests own: optional password, ACL user and TLS (then the TCP port speaks TLS only)."""

    def __init__(
        self,
        datadir: Path,
        *,
        password: str | None = None,
        user: ACLUser | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not on PATH; install it (apt-get install redis-server)")
        port = get_port(None)
        assert port is not None
        datadir.mkdir(parents=True, exist_ok=True)
        super().__init__(
            executable=executable,
            databases=16,
            redis_timeout=0,
            loglevel="notice",
            host="127.0.0.1",
            port=port,
            password=password,
            datadir=datadir,
            startup_timeout=30,
        )
        extra = ["--enable-debug-command", "local"]
        if user is not None:
            extra += ["--user", user.name, "on", f">{user.password}", "~*", "&*", "+@all"]
        if tls is not None:
            extra += ["--port", "0", "--tls-port", str(port), "--tls-auth-clients", "no"]
            extra += ["--tls-cert-file", str(tls.cert), "--tls-key-file", str(tls.key)]
            extra += ["--tls-ca-cert-file", str(tls.ca)]
        self.command_parts = [*self.command_parts, *extra]
        self.command = " ".join(self.command_parts)
        self.tls = tls
        self.user = user

    @property
    def url(self) -> str:
        """The server's URL without credentials."""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{self.host}:{self.port}"

    def admin(self) -> redis.Redis:
        """A plain client over the unix socket, with the server's own credentials: for set-up and checks."""
        return redis.Redis(unix_socket_path=self.unixsocket, password=self.password)
