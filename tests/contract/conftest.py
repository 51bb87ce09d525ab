"""The backend contract fixtures: every contract test runs once per backend: memory, Redis, Redis Cluster,
and Redis Cluster with every write waiting for a replica (``--redis-wait-replicas 1``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fleet_emulator.backends.base import Backend, ControlStore, EventLog, StateFeed, StateStore
from fleet_emulator.backends.factory import Backends, MemoryBackends, RedisBackends


def backends_of(kind: str, request: pytest.FixtureRequest) -> Backends:
    if kind == "memory":
        return MemoryBackends()
    if kind == "redis":
        return RedisBackends(request.getfixturevalue("redis_url"))
    return RedisBackends(request.getfixturevalue("redis_cluster_url"), 1 if kind == "cluster-wait" else 0)


@pytest.fixture(params=["memory", "redis", "cluster", "cluster-wait"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    backends = backends_of(request.param, request)
    made = backends("")
    yield made
    await made.close()
    await backends.close()


@pytest.fixture
def store(backend: Backend) -> StateStore:
    return backend.state


@pytest.fixture
def events(backend: Backend) -> EventLog:
    return backend.events


@pytest.fixture
def feed(backend: Backend) -> StateFeed:
    return backend.feed


@pytest.fixture
def control(backend: Backend) -> ControlStore:
    return backend.control
