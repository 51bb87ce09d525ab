"""A real Redis Cluster started by the tests: three masters with one replica each, on free ports of 127.0.0.1.

Six ``redis-server --cluster-enabled yes`` processes, each in a folder of its own with its ``nodes.conf``
and append-only file, joined by ``redis-cli --cluster create --cluster-replicas 1``; ready once every node's
``CLUSTER INFO`` says ``cluster_state:ok`` and every node sees all 16,384 slots and three replicas (polled
up to a deadline, no blind sleeps). A node may be killed (``kill``, SIGKILL) and started again on its port
and folder (``restart``), where it rejoins, as a replica of whoever took its slots over. Needs ``redis-cli``
beside ``redis-server``; without it the tests that need a cluster are skipped.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.redis_server import free_port, redis_binary

MASTERS = 3
NODES = MASTERS * 2  # one replica per master
START_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 30.0
FAILOVER_TIMEOUT_S = 30.0
NODE_TIMEOUT_MS = 1000  # how long a master may be unreachable before its replica takes over
POLL_S = 0.05
STOP_TIMEOUT_S = 2.0


def redis_cli() -> str | None:
    return shutil.which("redis-cli")


@dataclass
class ClusterNode:
    folder: Path
    port: int = field(default_factory=free_port)
    bus_port: int = field(default_factory=free_port)  # the cluster bus (else port + 10,000, maybe taken)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [
            redis_binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.folder),
            "--cluster-enabled", "yes", "--cluster-port", str(self.bus_port),
            "--cluster-config-file", str(self.folder / "nodes.conf"),
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--repl-diskless-sync-delay", "0",
            "--appendonly", "yes", "--save", "", "--protected-mode", "no",
            "--logfile", str(self.folder / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"cluster node on port {self.port} did not start:\n{self.log()}")
            time.sleep(POLL_S)

    def answers(self) -> bool:
        try:
            with self.client(socket_timeout=1.0) as client:
                return bool(client.ping())
        except redis.exceptions.RedisError:
            return False

    def client(self, socket_timeout: float = 1.0) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=socket_timeout
        )

    def log(self) -> str:
        path = self.folder / "redis.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no goodbye to the cluster, like a machine that is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still there after a while (Redis ignores SIGTERM while it writes
        its first append-only file, right after a replica's first synchronisation)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class RedisCluster:
    def __init__(self, folder: Path) -> None:
        self.nodes = [ClusterNode(folder / f"node-{n}") for n in range(NODES)]

    @property
    def url(self) -> str:
        """A cluster URL naming the first node; the client learns the others from it."""
        return f"redis+cluster://{self.nodes[0].address}/0"

    def start(self) -> None:
        cli = redis_cli()
        if cli is None:
            raise RuntimeError("no redis-cli on PATH")
        try:
            for node in self.nodes:
                node.start()
            subprocess.run(
                [cli, "--cluster", "create", *(n.address for n in self.nodes), "--cluster-replicas", "1",
                 "--cluster-yes"],
                check=True, capture_output=True, timeout=READY_TIMEOUT_S,
            )  # fmt: skip
            self.wait_until_ok(READY_TIMEOUT_S, replicas=MASTERS)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def info(self, node: ClusterNode) -> dict[str, str]:
        with node.client(socket_timeout=1.0) as client:
            raw = client.execute_command("CLUSTER", "INFO")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        return dict(line.split(":", 1) for line in text.split() if ":" in line)

    def replication(self, node: ClusterNode) -> dict[str, str]:
        with node.client(socket_timeout=1.0) as client:
            info: dict[str, str] = {k: str(v) for k, v in client.info("replication").items()}
        return info

    def roles(self, node: ClusterNode) -> dict[str, str]:
        """What ``node`` thinks each node is: address -> ``master``/``slave`` (``fail`` flags included)."""
        with node.client(socket_timeout=1.0) as client:
            raw = client.execute_command("CLUSTER", "NODES")
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        roles = {}
        for line in text.splitlines():
            parts = line.split()
            roles[parts[1].split("@")[0]] = parts[2]
        return roles

    def ok(self, replicas: int) -> bool:
        """Every live node says cluster_state:ok with all slots served, and sees ``replicas`` replicas."""
        try:
            for node in self.nodes:
                if not node.alive:
                    continue
                info = self.info(node)
                if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != "16384":
                    return False
                flags = self.roles(node).values()
                live_replicas = [f for f in flags if "slave" in f and "fail" not in f]
                if len(live_replicas) != replicas:
                    return False
                if self.role(node) == "slave" and self.replication(node).get("master_link_status") != "up":
                    return False  # a replica that has not synchronised yet could not take over
            return True
        except redis.exceptions.RedisError:
            return False

    def wait_until_ok(self, timeout_s: float, replicas: int) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ok(replicas):
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {n.address}\n{n.log()}" for n in self.nodes)
                raise RuntimeError(f"the cluster is not ok after {timeout_s:g} s:\n{logs}")
            time.sleep(POLL_S)

    def masters(self) -> list[ClusterNode]:
        """The live nodes that are masters now (fail-overs change which)."""
        return [n for n in self.nodes if n.alive and self.role(n) == "master"]

    def role(self, node: ClusterNode) -> str:
        with node.client(socket_timeout=1.0) as client:
            role = client.execute_command("ROLE")
        name = role[0]
        return name.decode() if isinstance(name, bytes) else str(name)

    def master_of(self, key: str) -> ClusterNode:
        """The live master that serves ``key``'s slot now."""
        for node in self.masters():
            with node.client(socket_timeout=1.0) as client:
                slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
                owner = client.execute_command("CLUSTER", "SLOTS")
            for start, end, master, *_ in owner:
                host = master[0].decode() if isinstance(master[0], bytes) else master[0]
                if start <= slot <= end:
                    return next(n for n in self.nodes if n.address == f"{host}:{master[1]}")
        raise RuntimeError(f"no master serves {key!r}")

    def flush(self) -> None:
        """Empty every master (their replicas follow)."""
        for node in self.masters():
            with node.client(socket_timeout=5.0) as client:
                client.flushall()

    def kill_and_fail_over(self, node: ClusterNode) -> None:
        """SIGKILL a master and wait until its replica serves its slots."""
        node.kill()
        self.wait_until_ok(FAILOVER_TIMEOUT_S, replicas=MASTERS - 1)

    def restart(self, node: ClusterNode) -> None:
        """Start a killed node again on its port and folder; it rejoins as a replica."""
        node.start()
        self.wait_until_ok(READY_TIMEOUT_S, replicas=MASTERS)


@contextmanager
def running_cluster(folder: Path) -> Iterator[RedisCluster]:
    cluster = RedisCluster(folder)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
