"""Backends per namespace: ``MemoryBackends`` gives each namespace its own in-process state,
``RedisBackends`` gives each its own key prefix on one shared Redis client (one connection pool)."""

from __future__ import annotations

from typing import Any, Protocol

import redis.asyncio as aioredis

from fleet_emulator.backends.base import Backend
from fleet_emulator.backends.memory import MemoryStateStore
from fleet_emulator.backends.memory_events import MemoryEventLog, MemoryStateFeed
from fleet_emulator.backends.redis_events import RedisEventLog, RedisStateFeed
from fleet_emulator.backends.redis_keys import DEFAULT_PREFIX, RedisKeys
from fleet_emulator.backends.redis_state import RedisStateStore

BACKENDS = ("memory", "redis")
MAX_POOLED_CONNECTIONS = 1000  # redis-py's default of 100 runs out under a few hundred concurrent calls


class Backends(Protocol):
    def __call__(self, namespace: str) -> Backend:
        """The backend of a namespace ("" is the default namespace)."""
        ...

    async def close(self) -> None: ...


class MemoryBackends:
    def __call__(self, namespace: str) -> Backend:
        return Backend(MemoryStateStore(), MemoryEventLog(), MemoryStateFeed())

    async def close(self) -> None:
        return None


class RedisBackends:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = self.connect(max_connections=MAX_POOLED_CONNECTIONS)

    def connect(self, **options: Any) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=10,
            health_check_interval=5,
            **options,
        )

    def __call__(self, namespace: str) -> Backend:
        """Keys under ``fleet-emulator:`` for the default namespace, ``fleet-emulator:ns:<name>:`` else;
        each stream's tail gets a connection of its own."""
        keys = RedisKeys(f"{DEFAULT_PREFIX}:ns:{namespace}" if namespace else DEFAULT_PREFIX)
        events = RedisEventLog(self.client, keys, lambda: self.connect(single_connection_client=True))
        return Backend(RedisStateStore(self.client, keys), events, RedisStateFeed(self.client, keys))

    async def close(self) -> None:
        await self.client.aclose()


def memory_backend() -> Backend:
    return MemoryBackends()("")


def backends_for(name: str, redis_url: str) -> Backends:
    if name == "memory":
        return MemoryBackends()
    if name == "redis":
        return RedisBackends(redis_url)
    raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
