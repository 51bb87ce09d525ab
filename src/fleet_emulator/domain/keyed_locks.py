"""Asyncio locks by key (a vehicle id, an idempotency key), each kept only while it is held or awaited.

They serialize what one process does to one key, so that a read-check-write sequence (an etag comparison,
a first use of an idempotency key) is not interleaved with another on the same key. They do nothing across
processes: replicas on one Redis may still interleave.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class KeyedLocks:
    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        """How many keys have a lock now (for tests: none once every holder is done)."""
        return len(self._locks)
