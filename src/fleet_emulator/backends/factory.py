"""Backends per namespace: ``MemoryBackends`` gives each namespace its own in-process state,
``RedisBackends`` gives each its own key prefix on one shared Redis client (one connection pool).

At start the emulator calls ``connect``: Redis gets up to a time-out to answer (one warning while it
waits), and a server that answers but cannot be used (not a Redis, a DB index out of range, refused
credentials) is ``BackendUnusable`` at once. ``shared_secret`` settles the HS256 secret of the bearer
tokens when none is configured: a random one per process in memory, one random secret created once and
read by every replica on Redis. ``check_redis_url`` tells what is wrong with a URL before anything
connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any, Protocol
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.connection import parse_url

from fleet_emulator.backends.base import Backend, ClockStore, NamespaceRegistry
from fleet_emulator.backends.event_bytes import ENCODING as EVENT_ENCODING
from fleet_emulator.backends.memory import MemoryStateStore
from fleet_emulator.backends.memory_control import (
    MemoryClockStore,
    MemoryControlStore,
    MemoryNamespaceRegistry,
)
from fleet_emulator.backends.memory_events import MemoryEventLog, MemoryStateFeed
from fleet_emulator.backends.redis_control import (
    RedisClockStore,
    RedisControlStore,
    RedisNamespaceRegistry,
)
from fleet_emulator.backends.redis_errors import FAILURES
from fleet_emulator.backends.redis_events import RedisEventLog, RedisStateFeed
from fleet_emulator.backends.redis_journal import RedisJournalStore
from fleet_emulator.backends.redis_keys import DEFAULT_PREFIX, RedisKeys
from fleet_emulator.backends.redis_state import RedisStateStore
from fleet_emulator.domain.background import keep_cancellation
from fleet_emulator.telemetry.metrics import REDIS

log = logging.getLogger(__name__)

BACKENDS = ("memory", "redis")
MAX_POOLED_CONNECTIONS = 1000  # redis-py's default of 100 runs out under a few hundred concurrent calls
UNUSABLE = (
    redis.exceptions.ResponseError,
    redis.exceptions.InvalidResponse,
    redis.exceptions.AuthenticationError,
)
SCHEMES = ("redis", "rediss", "unix")
PROBE_TIMEOUT_S = 2.0  # each wait of the start-up ping
FIRST_RETRY_S = 0.1  # then doubling up to 2 s


class BackendUnreachable(Exception):
    """The backend did not answer within the time-out at start."""


class BackendUnusable(Exception):
    """The backend answered, but it cannot be used as it is configured."""


def check_redis_url(url: str) -> str | None:
    """What is wrong with a Redis URL, or None when redis-py can use it."""
    if urlsplit(url).scheme not in SCHEMES:
        return "must start with redis://, rediss:// or unix://, e.g. redis://localhost:6379/0"
    try:
        options = parse_url(url)
    except ValueError as exc:
        return str(exc)
    database = options.get("db", 0)
    if not isinstance(database, int) or database < 0:
        return "the path must be a database number, e.g. /0"
    return None


def _cause(exc: BaseException) -> str:
    """What went wrong, in the operating system's words where there are some ("Connection refused")."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return os.strerror(seen.errno)
        seen = seen.__cause__ or seen.__context__
    return str(exc) or type(exc).__name__


def safe_url(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")).geturl()


class Backends(Protocol):
    def __call__(self, namespace: str) -> Backend:
        """The backend of a namespace ("" is the default namespace)."""
        ...

    async def connect(self, timeout_s: float) -> None:
        """Return once the backend answers; ``BackendUnreachable`` after ``timeout_s``, ``BackendUnusable``
        at once when it answers but cannot be used."""
        ...

    async def shared_secret(self, candidate: str) -> str:
        """The secret every process of the emulator uses: the first candidate offered wins."""
        ...

    def clock_store(self) -> ClockStore:
        """Where the emulator's virtual clock is kept (shared by the replicas on Redis)."""
        ...

    def registry(self) -> NamespaceRegistry:
        """Where the namespaces are registered (shared by the replicas on Redis)."""
        ...

    async def close(self) -> None: ...


class MemoryBackends:
    def __call__(self, namespace: str) -> Backend:
        return Backend(MemoryStateStore(), MemoryEventLog(), MemoryStateFeed(), MemoryControlStore())

    async def connect(self, timeout_s: float) -> None:
        return None

    async def shared_secret(self, candidate: str) -> str:
        return candidate

    def clock_store(self) -> ClockStore:
        return MemoryClockStore()

    def registry(self) -> NamespaceRegistry:
        return MemoryNamespaceRegistry()

    async def close(self) -> None:
        return None


class RedisBackends:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = self.new_client(max_connections=MAX_POOLED_CONNECTIONS)
        self.event_client = self.new_event_client(max_connections=MAX_POOLED_CONNECTIONS)

    def new_client(self, **options: Any) -> aioredis.Redis:
        settings: dict[str, Any] = {
            "decode_responses": True,
            "socket_connect_timeout": 2,
            "socket_timeout": 10,
            "health_check_interval": 5,
        }
        return aioredis.Redis.from_url(self.url, **{**settings, **options})

    def new_event_client(self, **options: Any) -> aioredis.Redis:
        """A client for the event log, which reads and writes text as latin-1 (``event_bytes.py``)."""
        return self.new_client(encoding=EVENT_ENCODING, **options)

    def __call__(self, namespace: str) -> Backend:
        """Keys under ``fleet-emulator:`` for the default namespace, ``fleet-emulator:ns:<name>:`` else;
        each stream's tail gets a connection of its own."""
        keys = RedisKeys(f"{DEFAULT_PREFIX}:ns:{namespace}" if namespace else DEFAULT_PREFIX)
        events = RedisEventLog(
            self.event_client,
            keys,
            lambda: self.new_event_client(single_connection_client=True),
        )
        return Backend(
            RedisStateStore(self.client, keys),
            events,
            RedisStateFeed(self.client, keys),
            RedisControlStore(self.client, keys, namespace),
            RedisJournalStore(self.client, keys),
        )

    async def connect(self, timeout_s: float) -> None:
        """Ping with a client of its own whose every wait is short, so that a Redis that accepts
        connections but never answers is given up in time too."""
        deadline = time.monotonic() + timeout_s
        short = min(PROBE_TIMEOUT_S, timeout_s)
        probe = self.new_client(
            socket_connect_timeout=short, socket_timeout=short, single_connection_client=True
        )
        delay = FIRST_RETRY_S
        try:
            while True:
                try:
                    await probe.ping()
                    REDIS.answered()
                    return
                except UNUSABLE as exc:
                    raise BackendUnusable(f"{safe_url(self.url)} cannot be used: {exc}") from None
                except FAILURES as exc:
                    REDIS.failed("connect")
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise BackendUnreachable(
                            f"Redis at {safe_url(self.url)} did not answer within {timeout_s:g} s "
                            f"(--redis-connect-timeout): {_cause(exc)}"
                        ) from None
                    if delay == FIRST_RETRY_S:
                        url = safe_url(self.url)
                        log.warning("waiting up to %g s for Redis at %s: %s", timeout_s, url, _cause(exc))
                await asyncio.sleep(min(delay, left))
                keep_cancellation()
                delay = min(delay * 2, 2.0)
        finally:
            with contextlib.suppress(*FAILURES):
                await probe.aclose()

    async def shared_secret(self, candidate: str) -> str:
        key = RedisKeys().jwt_secret
        await self.client.set(key, candidate, nx=True)
        kept: Any = await self.client.get(key)
        return str(kept)

    def clock_store(self) -> ClockStore:
        return RedisClockStore(self.client, RedisKeys())

    def registry(self) -> NamespaceRegistry:
        return RedisNamespaceRegistry(self.client)

    async def close(self) -> None:
        await self.client.aclose()
        await self.event_client.aclose()


def memory_backend() -> Backend:
    return MemoryBackends()("")


def backends_for(name: str, redis_url: str) -> Backends:
    if name == "memory":
        return MemoryBackends()
    if name == "redis":
        return RedisBackends(redis_url)
    raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
