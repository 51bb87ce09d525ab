"""A private ``redis-server`` for the Redis-backend benchmarks, on a free port of 127.0.0.1, never shared.

Same approach as the tests (it reuses ``tests/redis_server.py``'s binary lookup and free port), but
configured like the docker-compose Redis: an append-only file with the default fsync every second, in a
temporary folder that goes away with the server. ``private_redis`` yields the URL and stops the server
(and removes its folder) when the block ends, whatever happened in it; ``flush`` empties it between runs.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from tests.redis_server import START_TIMEOUT_S, free_port, redis_binary

from bench.servers import HOST

STOP_TIMEOUT_S = 10.0


@contextmanager
def private_redis() -> Iterator[str]:
    """Start ``redis-server`` on a free loopback port; yield its URL; stop it when the block ends."""
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as folder:
        port = free_port()
        command = [
            redis_binary(), "--bind", HOST, "--port", str(port), "--dir", folder,
            "--save", "", "--appendonly", "yes", "--protected-mode", "no",
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            url = f"redis://{HOST}:{port}/0"
            _wait_until_answering(process, url)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_answering(process: subprocess.Popen[bytes], url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            with redis.Redis.from_url(url, socket_connect_timeout=0.2) as client:
                client.ping()
                return
        except redis.exceptions.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server at {url} did not start") from None
            time.sleep(0.02)


def flush(url: str) -> None:
    """Empty the private Redis, so that the next emulator starts (and seeds) on a clean one."""
    with redis.Redis.from_url(url) as client:
        client.flushall()
