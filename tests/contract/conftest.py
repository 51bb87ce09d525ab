"""The backend contract fixtures: every contract test runs once per backend, memory and Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fleet_emulator.backends.base import Backend, EventLog, StateFeed, StateStore
from fleet_emulator.backends.factory import memory_backend, redis_backend


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        made = memory_backend()
    else:
        made = redis_backend(request.getfixturevalue("redis_url"))
    yield made
    await made.close()


@pytest.fixture
def store(backend: Backend) -> StateStore:
    return backend.state


@pytest.fixture
def events(backend: Backend) -> EventLog:
    return backend.events


@pytest.fixture
def feed(backend: Backend) -> StateFeed:
    return backend.feed
