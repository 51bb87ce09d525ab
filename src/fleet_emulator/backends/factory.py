"""Builds a complete ``Backend`` (state store, event log, state feed) for a backend name."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from fleet_emulator.backends.base import Backend
from fleet_emulator.backends.memory import MemoryStateStore
from fleet_emulator.backends.memory_events import MemoryEventLog, MemoryStateFeed
from fleet_emulator.backends.redis_events import RedisEventLog, RedisStateFeed
from fleet_emulator.backends.redis_keys import DEFAULT_PREFIX, RedisKeys
from fleet_emulator.backends.redis_state import RedisStateStore

BACKENDS = ("memory", "redis")
MAX_POOLED_CONNECTIONS = 1000  # redis-py's default of 100 runs out under a few hundred concurrent calls


def memory_backend() -> Backend:
    return Backend(MemoryStateStore(), MemoryEventLog(), MemoryStateFeed())


def redis_backend(url: str, prefix: str = DEFAULT_PREFIX) -> Backend:
    """All three parts on one client (one connection pool); each stream's tail has a connection of its own."""

    def connect(**options: Any) -> aioredis.Redis:
        return aioredis.Redis.from_url(
            url,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=10,
            health_check_interval=5,
            **options,
        )

    client = connect(max_connections=MAX_POOLED_CONNECTIONS)
    keys = RedisKeys(prefix)
    events = RedisEventLog(client, keys, lambda: connect(single_connection_client=True))
    return Backend(RedisStateStore(client, keys), events, RedisStateFeed(client, keys))


def make_backend(name: str, redis_url: str) -> Backend:
    if name == "memory":
        return memory_backend()
    if name == "redis":
        return redis_backend(redis_url)
    raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
