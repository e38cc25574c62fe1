"""A TCP proxy of the tests' own between clients and a real redis-server, to make the network misbehave: it
forwards, or stops forwarding (a black hole: no FIN, no RST), or sends a client bytes the server never sent."""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Iterator


class Proxy:
    """Listens on a free loopback port and forwards every connection to ``(host, port)``."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._closed = False
        self._lose_after: bytes | None = None
        self.lost_replies = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def black_hole(self) -> None:
        """Stop forwarding either way; connections stay open, and what is sent waits unread."""
        self._forwarding.clear()

    def resume(self) -> None:
        self._forwarding.set()

    def lose_reply_to(self, marker: bytes) -> None:
        """Once: forward the next command that contains ``marker`` but lose what the server answers it, as when
        a connection dies just after the command reached Redis."""
        self._lose_after = marker

    def drop(self) -> None:
        """Cut every connection: each side gets a reset (RST), as when a load balancer or NAT drops them."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, server in pairs:
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()

    def inject(self, data: bytes) -> None:
        """Send ``data`` to every client, as if the server had sent it."""
        with self._lock:
            clients = [client for client, _ in self._pairs]
        for client in clients:
            with contextlib.suppress(OSError):
                client.sendall(data)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for client, server in pairs:
            client.close()
            server.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self._lock:
                self._pairs.append((client, server))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        other = {client: server, server: client}
        losing = False
        try:
            while not self._closed:
                if not self._forwarding.wait(0.05):
                    continue
                readable, _, _ = select.select([client, server], [], [], 0.05)
                for sock in readable:
                    if not self._forwarding.is_set():
                        break
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client and self._lose_after is not None and self._lose_after in data:
                        self._lose_after = None
                        losing = True
                    elif sock is server and losing:
                        losing = False
                        self.lost_replies += 1
                        continue
                    other[sock].sendall(data)
        except (OSError, ValueError):  # a socket closed under us (drop, close)
            return
        finally:
            with self._lock:
                if (client, server) in self._pairs:
                    self._pairs.remove((client, server))
            client.close()
            server.close()


@contextlib.contextmanager
def proxy_to(host: str, port: int) -> Iterator[Proxy]:
    proxy = Proxy(host, port)
    try:
        yield proxy
    finally:
        proxy.close()
