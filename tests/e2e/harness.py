"""What the end-to-end tests share: the emulator as a real process, and the real grpcurl binary.

``serving`` starts a command (normally ``fleet-emulator serve``) with its output in a log file, waits until
the gRPC health check of the expected address answers SERVING (polling with a short interval up to a total
deadline, failing with the process's output otherwise), and at the end sends SIGTERM and asserts that the
process exits with code 0 within a few seconds. ``grpcurl`` runs the binary installed beside the Python that
runs the tests; the ``parse_*`` functions read what it prints: JSON responses, the error block with its
rich details, and the response headers of ``-v``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

BIN = Path(sys.executable).parent
FLEET_EMULATOR = BIN / "fleet-emulator"
GRPCURL = BIN / "grpcurl"

READY_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.05
STOP_TIMEOUT_S = 5.0
GRPCURL_TIMEOUT_S = 15.0
ENV_PREFIX = "FLEET_EMULATOR_"
GRPCURL_STATUS_EXIT_BASE = 64  # grpcurl exits with 64 + the gRPC status code when a call fails

_SERVING_LINE = re.compile(r"fleet emulator serving .* on (?P<host>\S+):(?P<port>\d+) ")
_BIND_FAILED = re.compile(r"Failed to bind to address (?P<host>\S+):(?P<port>\d+)")


class NotReady(AssertionError):
    """The emulator process did not report SERVING on the expected address."""


class ServingElsewhere(NotReady):
    """The emulator served on, or tried to bind, another port than the one it was given."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``FLEET_EMULATOR_*`` variable, plus ``extra``; the web
    console on a free port, so that emulators started side by side do not compete for its default one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env[f"{ENV_PREFIX}CONSOLE_PORT"] = "0"
    env.update(extra)
    return env


def serve_command(*args: str, simulate: bool = False) -> list[str]:
    """``fleet-emulator serve`` with ``args``; the simulator is off unless asked for, so that vehicles keep
    the state the tests give them."""
    return [str(FLEET_EMULATOR), "serve", *args, *([] if simulate else ["--no-simulate"])]


def health_status(address: str, service: str = "", timeout: float = 1.0) -> str | None:
    """The health check's status name (``SERVING``, ...), or None when the call fails."""
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError:
            return None
        name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        return name


@dataclass
class ServingProcess:
    """A started process serving gRPC on 127.0.0.1, the port it should serve on and the file its output
    goes to (an emulator, or a balancer in front of emulators)."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path
    address: str = field(init=False)

    def __post_init__(self) -> None:
        self.address = f"127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class EmulatorProcess(ServingProcess):
    """A started emulator process."""

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll the health check until SERVING; raise ``NotReady`` with the output when it never is."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            output = self.output()
            elsewhere = _SERVING_LINE.search(output) or _BIND_FAILED.search(output)
            if elsewhere and int(elsewhere["port"]) != self.port:
                where = f"{elsewhere['host']}:{elsewhere['port']}"
                raise ServingElsewhere(f"{where} instead of port {self.port} (exit {code}):\n{output}")
            if code is not None:
                raise NotReady(f"exited with {code} before serving on {self.address}:\n{output}")
            if health_status(self.address, timeout=0.5) == "SERVING":
                return
            if time.monotonic() > deadline:
                raise NotReady(f"not SERVING on {self.address} after {timeout:.0f} s:\n{output}")
            time.sleep(POLL_INTERVAL_S)

    def wait_for_line(self, pattern: str, timeout: float = READY_TIMEOUT_S) -> re.Match[str]:
        """The first match of ``pattern`` in the output, once the process has written it."""
        deadline = time.monotonic() + timeout
        while (found := re.search(pattern, self.output())) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no line matching {pattern!r} in the output:\n{self.output()}")
            time.sleep(POLL_INTERVAL_S)
        return found

    def terminate(self, sig: signal.Signals = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """Send ``sig`` and wait; the exit code, or None when it had to be killed after ``timeout``."""
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None


def start(
    command: Sequence[str], port: int, log: Path, env: Mapping[str, str] | None = None
) -> EmulatorProcess:
    """Start ``command`` with stdout and stderr in ``log``; it should serve on 127.0.0.1:``port``."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else clean_env(),
        )
    return EmulatorProcess(process, port, log)


@contextmanager
def serving(
    command: Sequence[str], port: int, log: Path, env: Mapping[str, str] | None = None
) -> Iterator[EmulatorProcess]:
    """A SERVING emulator for the ``with`` block, then SIGTERM, asserting exit code 0 within a few seconds."""
    emulator = start(command, port, log, env)
    try:
        emulator.wait_ready()
        yield emulator
    finally:
        began = time.monotonic()
        code = emulator.terminate()
    # Reached only when the block succeeded: a failure in it is the more useful report.
    took = time.monotonic() - began
    assert code == 0, f"exit code {code} {took:.1f} s after SIGTERM (None: killed):\n{emulator.output()}"


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real grpcurl binary with ``args``."""
    return subprocess.run(
        [str(GRPCURL), *args], capture_output=True, text=True, timeout=GRPCURL_TIMEOUT_S, check=False
    )


def call(address: str, method: str, request: Mapping[str, Any], *flags: str) -> dict[str, Any]:
    """A successful unary call through grpcurl (plaintext, server reflection); the response as JSON."""
    result = grpcurl("-plaintext", *flags, "-d", json.dumps(request), address, method)
    assert result.returncode == 0, f"grpcurl {method} failed ({result.returncode}):\n{result.stderr}"
    response: dict[str, Any] = json.loads(result.stdout)
    return response


def get_field(message: Mapping[str, Any], name: str, default: Any = None) -> Any:
    """A field of grpcurl's JSON under its proto name (``next_page_token``) or its JSON name (camelCase)."""
    head, *rest = name.split("_")
    camel = head + "".join(part.title() for part in rest)
    return message.get(name, message.get(camel, default))


@dataclass(frozen=True)
class GrpcurlError:
    """The ``ERROR:`` block grpcurl prints for a failed call."""

    code: str
    message: str
    details: list[dict[str, Any]]

    def detail(self, type_name: str) -> dict[str, Any]:
        """The one detail of ``type_name`` (e.g. ``google.rpc.ErrorInfo``)."""
        found = [d for d in self.details if d.get("@type") == f"type.googleapis.com/{type_name}"]
        assert len(found) == 1, f"expected one {type_name} in {self.details}"
        return found[0]


def parse_error(stderr: str) -> GrpcurlError:
    code = re.search(r"^\s*Code: (\S+)\s*$", stderr, re.MULTILINE)
    message = re.search(r"^\s*Message: (.*)$", stderr, re.MULTILINE)
    assert code and message, f"no grpcurl error block in:\n{stderr}"
    details = [json.loads(m[1]) for m in re.finditer(r"^\s*\d+\)\s+(\{.*\})\s*$", stderr, re.MULTILINE)]
    return GrpcurlError(code[1], message[1].strip(), details)


def parse_response_headers(verbose_stdout: str) -> dict[str, list[str]]:
    """The ``Response headers received:`` section of ``grpcurl -v``, as name -> values."""
    lines = verbose_stdout.splitlines()
    assert "Response headers received:" in lines, f"no response headers in:\n{verbose_stdout}"
    headers: dict[str, list[str]] = {}
    for line in lines[lines.index("Response headers received:") + 1 :]:
        if not line.strip():
            break
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return headers
