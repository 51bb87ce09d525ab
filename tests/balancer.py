"""A real nginx balancing gRPC over emulator replicas, with the repository's own configuration.

``deploy/nginx-grpc.conf`` is the file the compose profile ``replicas`` mounts into its nginx; ``render``
puts local addresses in place of the compose service names of its upstream servers and of its listen
address, and changes nothing else. ``balancing`` runs nginx as the nginx image does (``-g 'daemon off;'``)
with its prefix in a folder of the test, so that its pid file and temporary folders are there and it needs
no root; its stderr (error log) and stdout (access log) go to a file. nginx is Debian's, which ``make
balancer`` (a prerequisite of ``make unit``) installs where it is missing; as a non-root user's PATH may not
have /usr/sbin, that is looked in too.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.e2e.harness import ServingProcess, health_status

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "deploy" / "nginx-grpc.conf"
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.05

_UPSTREAM_BLOCK = re.compile(r"(^\s*upstream\s+\S+\s*\{)(?P<body>.*?)(^\s*\})", re.S | re.M)
_SERVER = re.compile(r"^(?P<lead>\s*server\s+)(?P<address>[^\s;]+)(?P<rest>(?:\s[^;]*)?;)", re.M)
_LISTEN = re.compile(r"^(?P<lead>\s*listen\s+)(?P<address>[^\s;]+)(?P<rest>(?:\s[^;]*)?;)", re.M)


def nginx_binary() -> str | None:
    """The nginx binary on the PATH, or Debian's in /usr/sbin; None when there is none."""
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")


def upstream_servers(config: str) -> list[str]:
    """The addresses of the servers of the configuration's one upstream block, in order."""
    [block] = _UPSTREAM_BLOCK.findall(config)
    return [m["address"] for m in _SERVER.finditer(block[1])]


def listen_addresses(config: str) -> list[str]:
    return [m["address"] for m in _LISTEN.finditer(config)]


def render(config: str, upstreams: Sequence[str], listen: str) -> str:
    """``config`` with ``upstreams`` as its upstream servers (one for one, parameters kept) and ``listen``
    as its one listen address; fails if the file does not have as many servers as ``upstreams``."""
    servers = upstream_servers(config)
    assert len(servers) == len(upstreams), f"the configuration balances {servers}, not {len(upstreams)}"
    assert len(listen_addresses(config)) == 1, "one listen directive"
    replacements = iter(upstreams)

    def block(match: re.Match[str]) -> str:
        body = _SERVER.sub(lambda m: f"{m['lead']}{next(replacements)}{m['rest']}", match["body"])
        return f"{match[1]}{body}{match[3]}"

    rendered = _UPSTREAM_BLOCK.sub(block, config)
    return _LISTEN.sub(lambda m: f"{m['lead']}{listen}{m['rest']}", rendered)


class Balancer(ServingProcess):
    """A started nginx: its master process, the address it listens on and the file of its logs."""

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Until a gRPC health check through nginx answers SERVING (a replica behind it is up)."""
        deadline = time.monotonic() + timeout
        while health_status(self.address, timeout=0.5) != "SERVING":
            code = self.process.poll()
            assert code is None, f"nginx exited with {code}:\n{self.output()}"
            assert time.monotonic() < deadline, f"nothing SERVING through nginx:\n{self.output()}"
            time.sleep(POLL_INTERVAL_S)

    def stop(self) -> int:
        """A fast shutdown (SIGTERM to the master, which ends its workers); the master's exit code. Its
        process group (master and workers) is killed if it does not end in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


@contextmanager
def balancing(upstreams: Sequence[str], port: int, folder: Path) -> Iterator[Balancer]:
    """nginx with the repository's configuration on 127.0.0.1:``port`` in front of ``upstreams``, for the
    ``with`` block; then stopped, asserting a clean exit."""
    binary = nginx_binary()
    assert binary, "no nginx: install Debian's nginx package (`make balancer` does)"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "nginx.conf"
    config.write_text(render(CONFIG.read_text(), upstreams, f"127.0.0.1:{port}"))
    log = folder / "nginx.log"
    command = [binary, "-p", f"{folder}/", "-c", str(config), "-g", "daemon off;"]
    with log.open("ab") as out:  # appending: nginx opens /dev/stdout (access log) anew beside stderr
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    balancer = Balancer(process, port, log)
    try:
        yield balancer
    finally:
        code = balancer.stop()
    assert code == 0, f"nginx exited with {code}:\n{balancer.output()}"
