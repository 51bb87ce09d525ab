"""The backend contract fixtures: every contract test runs once per backend, memory and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fleet_emulator.backends.base import StateStore
from fleet_emulator.backends.memory import MemoryStateStore
from fleet_emulator.backends.redis_state import RedisStateStore


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    if request.param == "memory":
        yield MemoryStateStore()
        return
    redis_store = RedisStateStore.from_url(request.getfixturevalue("redis_url"))
    yield redis_store
    await redis_store.close()
