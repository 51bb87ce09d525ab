"""Unary load from h2load (nghttp2's C HTTP/2 load generator), driving a gRPC method with a fixed request.

The request body is the gRPC framing of the serialized request (a 0 compression flag, the 4-byte
big-endian length, the bytes), posted with ``content-type: application/grpc`` and ``te: trailers`` on
``connections`` HTTP/2 connections with ``in_flight`` streams each (``-c``, ``-m``), for a fixed duration
(``-D``), on one h2load thread. ``--log-file`` gives every request's latency. h2load judges the HTTP status
only, while gRPC puts its status in the trailers; a failed gRPC call (trailers-only) carries no DATA, so
the data bytes received, divided by the size of one framed response, tell how many calls got an answer:
a shortfall counts as failed calls. Callers also make one real gRPC call before and after each window.
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from bench.cpu import pinned_command

INSTALL_HINT = (
    "h2load is not installed: `apt-get install nghttp2-client` (Debian/Ubuntu; `make bench` does it)"
)
EXTRA_SECONDS = 60.0  # beyond the duration before h2load is given up
ANSWERED_TOLERANCE = 0.001  # of the calls: data bytes may count a response cut at the window's end
REQUESTS = re.compile(
    r"requests: (?P<total>\d+) total, (?P<started>\d+) started, (?P<done>\d+) done, "
    r"(?P<succeeded>\d+) succeeded, (?P<failed>\d+) failed, (?P<errored>\d+) errored, "
    r"(?P<timeout>\d+) timeout"
)
STATUS = re.compile(r"status codes: (?P<s2>\d+) 2xx, (?P<s3>\d+) 3xx, (?P<s4>\d+) 4xx, (?P<s5>\d+) 5xx")
DATA = re.compile(r"\((?P<data>\d+)\) data")


def h2load_binary() -> str:
    found = shutil.which("h2load")
    if found is None:
        raise RuntimeError(INSTALL_HINT)
    return found


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: uncompressed, 4-byte big-endian length, the bytes."""
    return b"\x00" + len(message).to_bytes(4, "big") + message


@dataclass(frozen=True)
class H2loadRun:
    """h2load's own counts for one run, the data bytes received and each request's latency in seconds."""

    seconds: float
    done: int
    succeeded: int
    failed: int
    errored: int
    timeout: int
    redirected: int  # 3xx answers, which h2load counts as succeeded
    data_bytes: int
    response_bytes: int  # one framed response, as a gRPC client received it
    latencies_s: list[float]
    cpu_seconds: float  # h2load's own

    @property
    def answered(self) -> int:
        """Calls whose response carried a message, from the data bytes."""
        return round(self.data_bytes / self.response_bytes) if self.response_bytes else self.succeeded

    @property
    def grpc_failures(self) -> int:
        """Calls that h2load counted as succeeded but that carried no message (a gRPC error), beyond a
        response or so cut off at the window's end."""
        missing = self.succeeded - self.answered
        return missing if missing > max(2, ANSWERED_TOLERANCE * self.succeeded) else 0

    @property
    def failures(self) -> int:
        """Failed requests (h2load's count includes the errored ones, timeouts and HTTP errors), 3xx
        answers (h2load counts them as successes) and calls without a message."""
        return self.failed + self.redirected + self.grpc_failures

    def summary(self) -> str:
        return (
            f"{self.succeeded:,} succeeded, {self.failed} failed, {self.errored} errored, {self.timeout} "
            f"timeout, {self.redirected} 3xx; {self.answered:,} answered with a message "
            f"({self.data_bytes:,} data bytes / {self.response_bytes} per response)"
        )


def h2load_command(
    url: str, body: Path, log: Path, seconds: float, connections: int, in_flight: int, *headers: str
) -> list[str]:
    """h2load posting the gRPC frame in ``body`` to ``url`` for ``seconds`` (with more ``headers``,
    ``name: value``), each call's time logged to ``log``."""
    return [
        h2load_binary(),
        f"--duration={round(seconds * 1000)}ms",
        f"--clients={connections}",
        f"--max-concurrent-streams={in_flight}",
        "--threads=1",
        f"--data={body}",
        "--header=content-type: application/grpc",
        "--header=te: trailers",
        *(f"--header={header}" for header in headers),
        f"--log-file={log}",
        url,
    ]


def run_h2load(
    url: str,
    request: bytes,
    response_bytes: int,
    seconds: float,
    connections: int,
    in_flight: int,
    cores: Collection[int] = (),
) -> H2loadRun:
    """Post ``request`` (serialized, unframed) to ``url`` for ``seconds``; ``response_bytes`` is the size
    of the serialized response a successful call gets."""
    with tempfile.TemporaryDirectory(prefix="bench-h2load-") as folder:
        body, log = Path(folder) / "request.bin", Path(folder) / "requests.tsv"
        body.write_bytes(grpc_frame(request))
        command = h2load_command(url, body, log, seconds, connections, in_flight)
        before = children_cpu_seconds()
        finished = subprocess.run(
            pinned_command(command, cores), capture_output=True, text=True, timeout=seconds + EXTRA_SECONDS
        )
        cpu_seconds = children_cpu_seconds() - before
        output = finished.stdout + finished.stderr
        requests, status, data = REQUESTS.search(output), STATUS.search(output), DATA.search(output)
        if finished.returncode != 0 or requests is None or status is None or data is None:
            raise RuntimeError(f"h2load failed ({finished.returncode}): {' '.join(command)}\n{output}")
        latencies = [int(line.split("\t")[2]) / 1e6 for line in log.read_text().splitlines() if line]
    counts = {name: int(value) for name, value in requests.groupdict().items()}
    return H2loadRun(
        seconds=seconds,
        done=counts["done"],
        succeeded=counts["succeeded"],
        failed=counts["failed"],
        errored=counts["errored"],
        timeout=counts["timeout"],
        redirected=int(status["s3"]),
        data_bytes=int(data["data"]),
        response_bytes=len(grpc_frame(b"\x00" * response_bytes)),
        latencies_s=latencies,
        cpu_seconds=cpu_seconds,
    )


def children_cpu_seconds() -> float:
    """The CPU seconds of this process's children that have ended."""
    """CPU seconds of this process's ended children: h2load's, once it has ended."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime
