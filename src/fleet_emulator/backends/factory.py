"""Builds a complete ``Backend`` (state store, event log, state feed) for a backend name."""

from __future__ import annotations

import redis.asyncio as aioredis

from fleet_emulator.backends.base import Backend
from fleet_emulator.backends.memory import MemoryStateStore
from fleet_emulator.backends.memory_events import MemoryEventLog, MemoryStateFeed
from fleet_emulator.backends.redis_events import RedisEventLog, RedisStateFeed
from fleet_emulator.backends.redis_keys import DEFAULT_PREFIX, RedisKeys
from fleet_emulator.backends.redis_state import RedisStateStore

BACKENDS = ("memory", "redis")


def memory_backend() -> Backend:
    return Backend(MemoryStateStore(), MemoryEventLog(), MemoryStateFeed())


def redis_backend(url: str, prefix: str = DEFAULT_PREFIX) -> Backend:
    """All three parts on one client (one connection pool); blocking reads take their own connections."""
    client = aioredis.Redis.from_url(
        url, decode_responses=True, socket_connect_timeout=2, socket_timeout=10, health_check_interval=5
    )
    keys = RedisKeys(prefix)
    return Backend(RedisStateStore(client, keys), RedisEventLog(client, keys), RedisStateFeed(client, keys))


def make_backend(name: str, redis_url: str) -> Backend:
    if name == "memory":
        return memory_backend()
    if name == "redis":
        return redis_backend(redis_url)
    raise ValueError(f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
