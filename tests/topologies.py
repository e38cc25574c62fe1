"""Real Redis topologies for the tests, on free loopback ports: a primary with a replica watched by three
sentinels (``redis-server conf --sentinel``), which a test may kill, fail over or switch over by hand."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import redis
from port_for import get_port

from .servers import TLSFiles
from .waiting import wait_until

MASTER = "mymaster"
DOWN_AFTER_MS = 1000  # how long a primary may be silent before a sentinel calls it down
FAILOVER_TIMEOUT_MS = 3000


@dataclass
class Node:
    """One redis-server (data node or sentinel) in a folder of its own."""

    port: int
    folder: Path
    conf: str
    process: subprocess.Popen[bytes] | None = None
    sentinel: bool = False
    password: str | None = None
    tls: TLSFiles | None = None  # then the port speaks TLS only
    bus: bool = False  # a cluster node: its port + 10,000 carries the cluster bus

    def start(self) -> None:
        """Start it; on another free port when the chosen one was taken meanwhile (the server exits)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server is not on PATH; install it (apt-get install redis-server)")
        for _ in range(3):
            conf = self.folder / "redis.conf"
            conf.write_text(self.conf)  # a sentinel rewrites its own file
            argv = [executable, str(conf), *(["--sentinel"] if self.sentinel else [])]
            self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_until(lambda: self._answers() or self._exited(), timeout=15)
            if not self._exited():
                return
            port = _port(self.bus)
            self.conf = self.conf.replace(f"port {self.port}\n", f"port {port}\n")
            self.port = port
        raise RuntimeError(f"redis-server did not start in {self.folder}")

    def _exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def pause(self) -> None:
        """Stop the process (SIGSTOP): its connections stay open and say nothing, as a host gone silent."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis(
            "127.0.0.1",
            self.port,
            password=self.password,
            socket_timeout=2,
            socket_connect_timeout=2,
            ssl=self.tls is not None,
            ssl_ca_certs=str(self.tls.ca) if self.tls else None,
        )

    def _answers(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.ConnectionError:
            return False


@dataclass
class SentinelSet:
    """A primary and a replica, and three sentinels with a quorum of two."""

    primary: Node
    replica: Node
    sentinels: list[Node] = field(default_factory=list)

    password: str | None = None  # the sentinels' own (requirepass)

    @classmethod
    def start(cls, folder: Path, password: str | None = None, tls: TLSFiles | None = None) -> SentinelSet:
        """Start the set; with ``tls`` every node, sentinels included, speaks TLS only (replication too)."""
        started: list[Node] = []
        try:
            return cls._start(folder, password, tls, started)
        except BaseException:  # no server left running behind a failed start
            for node in started:
                node.kill()
            raise

    @classmethod
    def _start(cls, folder: Path, password: str | None, tls: TLSFiles | None, started: list[Node]) -> SentinelSet:
        primary = _data_node(folder / "primary", None, tls)
        started.append(primary)
        primary.start()
        replica = _data_node(folder / "replica", primary.port, tls)
        started.append(replica)
        replica.start()
        topology = cls(primary, replica, password=password)
        for index in range(3):
            port = _port()
            conf = (
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {primary.port} 2\n"
                f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n"
            )
            if password is not None:
                conf += f"requirepass {password}\n"
            node = Node(
                port, folder / f"sentinel{index}", _tls(conf, port, tls), sentinel=True, password=password, tls=tls
            )
            started.append(node)
            node.start()
            topology.sentinels.append(node)
        wait_until(topology.settled, timeout=30, interval=0.1)
        return topology

    @property
    def url(self) -> str:
        """The ``redis+sentinel://`` URL of the set."""
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER}"

    def primary_port(self) -> int | None:
        """Where the sentinels say the primary is (the first that answers)."""
        for node in self.sentinels:
            try:
                with node.client() as client:
                    _, port = client.sentinel_get_master_addr_by_name(MASTER)
                    return int(port)
            except (redis.ConnectionError, redis.TimeoutError):
                continue
        return None

    def switch_over(self) -> None:
        """A switch-over by hand: the replica promoted, the primary made its replica, the sentinels told; no
        connection is closed."""
        old, new = self.primary, self.replica
        with new.client() as client:
            client.replicaof("NO", "ONE")
        with old.client() as client:
            client.replicaof("127.0.0.1", new.port)
        for node in self.sentinels:
            with node.client() as client:
                client.sentinel_remove(MASTER)
                client.sentinel_monitor(MASTER, "127.0.0.1", new.port, 2)

    def settled(self) -> bool:
        """Every sentinel knows the primary, its replica in sync, and the two other sentinels."""
        for node in self.sentinels:
            try:
                with node.client() as client:
                    state = client.sentinel_master(MASTER)
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                return False
            if state["num-other-sentinels"] < 2 or state["num-slaves"] < 1 or not state["is_master"]:
                return False
            if state["is_sdown"] or state["is_odown"]:
                return False
        with self.node(self.primary_port()).client() as client:
            info = client.info("replication")
        return bool(info["role"] == "master" and int(info.get("connected_slaves", 0)) >= 1)

    def node(self, port: int | None) -> Node:
        return self.primary if port == self.primary.port else self.replica

    def stop(self) -> None:
        for node in (*self.sentinels, self.primary, self.replica):
            node.kill()


def _port(bus: bool = False) -> int:
    """A free port; with ``bus``, one whose cluster bus port (10,000 higher) is free and valid too."""
    while True:
        port = get_port(None)
        assert port is not None
        if not bus or (port <= 55535 and _free(port + 10000)):
            return port


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _data_node(folder: Path, primary_port: int | None, tls: TLSFiles | None = None) -> Node:
    port = _port()
    conf = f'port {port}\nbind 127.0.0.1\ndir {folder}\nsave ""\nappendonly no\n'
    if primary_port is not None:
        conf += f"replicaof 127.0.0.1 {primary_port}\n"
    return Node(port, folder, _tls(conf, port, tls), tls=tls)


def _tls(conf: str, port: int, tls: TLSFiles | None) -> str:
    """``conf`` with its port speaking TLS only, to clients, replicas and sentinels alike."""
    if tls is None:
        return conf
    return conf.replace(f"port {port}\n", f"port 0\ntls-port {port}\n") + (
        f"tls-cert-file {tls.cert}\ntls-key-file {tls.key}\ntls-ca-cert-file {tls.ca}\n"
        "tls-auth-clients no\ntls-replication yes\n"
    )


CLUSTER_NODE_TIMEOUT_MS = 1000  # how long a primary may be silent before the cluster fails it over


@dataclass
class Cluster:
    """A Redis Cluster of three primaries with one replica each (``redis-cli --cluster create``)."""

    nodes: list[Node]

    @classmethod
    def start(cls, folder: Path) -> Cluster:
        nodes: list[Node] = []
        try:
            return cls._start(folder, nodes)
        except BaseException:  # no server left running behind a failed start
            for node in nodes:
                node.kill()
            raise

    @classmethod
    def _start(cls, folder: Path, nodes: list[Node]) -> Cluster:
        for index in range(6):
            port = _port(bus=True)
            node_folder = folder / f"node{index}"
            conf = (
                f'port {port}\nbind 127.0.0.1\ndir {node_folder}\nsave ""\nappendonly no\n'
                f"cluster-enabled yes\ncluster-config-file nodes.conf\n"
                f"cluster-node-timeout {CLUSTER_NODE_TIMEOUT_MS}\ncluster-require-full-coverage no\n"
            )
            node = Node(port, node_folder, conf, bus=True)
            nodes.append(node)
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not on PATH; install it (apt-get install redis-tools)")
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "1", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        cluster = cls(nodes)
        wait_until(cluster.settled, timeout=30, interval=0.1)
        return cluster

    @property
    def url(self) -> str:
        """The ``redis+cluster://`` URL of the cluster, naming every node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def settled(self) -> bool:
        """Every node sees the cluster as ok, with three primaries that each have a replica."""
        for node in self.nodes:
            try:
                with node.client() as client:
                    info = client.execute_command("CLUSTER", "INFO")
            except (redis.ConnectionError, redis.TimeoutError):
                return False
            text = info.decode() if isinstance(info, bytes) else str(info)
            if "cluster_state:ok" not in text or "cluster_known_nodes:6" not in text:
                return False
        with self.nodes[0].client() as client:
            ranges = client.execute_command("CLUSTER", "SLOTS")
        return len(self.primaries()) == 3 and len(ranges) == 3 and all(len(entry) >= 4 for entry in ranges)

    def roles(self) -> dict[int, dict[str, object]]:
        """Port -> INFO replication of every node that answers."""
        found = {}
        for node in self.nodes:
            try:
                with node.client() as client:
                    found[node.port] = client.info("replication")
            except (redis.ConnectionError, redis.TimeoutError):
                continue
        return found

    def primaries(self) -> list[Node]:
        roles = self.roles()
        return [node for node in self.nodes if roles.get(node.port, {}).get("role") == "master"]

    def owner(self, key: str) -> Node:
        """The primary that owns ``key``'s slot, as the first node that answers says."""
        for asked in self.nodes:
            try:
                with asked.client() as client:
                    slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
                    ranges = client.execute_command("CLUSTER", "SLOTS")
            except (redis.ConnectionError, redis.TimeoutError):
                continue
            for start, end, primary, *_ in ranges:
                if start <= slot <= end:
                    return next(node for node in self.nodes if node.port == int(primary[1]))
        raise LookupError(f"no node owns the slot of {key!r}")

    def migrate_slot(self, key: str, target: Node) -> None:
        """Move the slot of ``key``, with its keys, to the primary ``target``, as ``redis-cli --cluster
        reshard`` moves slots (IMPORTING, MIGRATING, MIGRATE the keys, then the slot's new owner to everyone)."""
        source = self.owner(key)
        with source.client() as src, target.client() as dst:
            slot = int(src.execute_command("CLUSTER", "KEYSLOT", key))
            source_id, target_id = src.execute_command("CLUSTER", "MYID"), dst.execute_command("CLUSTER", "MYID")
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "REPLACE", "KEYS", *keys)
        for node in self.primaries():
            with node.client() as client:
                client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)

    def replica_of(self, primary: Node) -> Node:
        """The node that replicates ``primary``."""
        roles = self.roles()
        for node in self.nodes:
            info = roles.get(node.port, {})
            if info.get("role") == "slave" and int(str(info["master_port"])) == primary.port:
                return node
        raise LookupError(f"no replica of 127.0.0.1:{primary.port}")

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
