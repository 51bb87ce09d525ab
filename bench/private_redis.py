"""A private ``redis-server`` for the Redis-backend benchmarks, on a free port of 127.0.0.1, never shared.

Same approach as the tests (it reuses ``tests/redis_server.py``'s binary lookup and free port), but
configured like the docker-compose Redis: an append-only file with the default fsync every second, in a
temporary folder that goes away with the server. ``redis_server`` starts it on the given cores (the server
side's: Redis is part of what serves a Redis-backed emulator) and yields its URL and pid (for its CPU
time); ``private_redis`` yields the URL only. Either stops the server (and removes its folder) when the
block ends, whatever happened in it; ``flush`` empties it between runs.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from tests.redis_server import START_TIMEOUT_S, free_port, redis_binary

from bench.cpu import pinned_command
from bench.servers import HOST

STOP_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RedisProcess:
    url: str
    pid: int


@contextmanager
def redis_server(cores: Collection[int] = ()) -> Iterator[RedisProcess]:
    """Start ``redis-server`` on a free loopback port, pinned to ``cores`` when given; stop it at the end."""
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as folder:
        port = free_port()
        command = [
            redis_binary(), "--bind", HOST, "--port", str(port), "--dir", folder,
            "--save", "", "--appendonly", "yes", "--protected-mode", "no", "--maxclients", "10000",
        ]  # fmt: skip
        process = subprocess.Popen(
            pinned_command(command, cores), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            url = f"redis://{HOST}:{port}/0"
            _wait_until_answering(process, url)
            yield RedisProcess(url, process.pid)
        finally:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def private_redis() -> Iterator[str]:
    """``redis_server`` on any core; yields its URL."""
    with redis_server() as server:
        yield server.url


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
