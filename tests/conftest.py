"""Shared fixtures: an in-process emulator on a free port, a channel to it, a private Redis and a private
Redis Cluster (three masters with a replica each)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from fleet_emulator.server import Emulator, Settings
from tests.redis_cluster import RedisCluster, redis_cli
from tests.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the test session, started by the tests on a free port."""
    server = RedisServer(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of one test alone, which it may stop and start again (its data kept on disk)."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the session's private Redis, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """One Redis Cluster for the test session (six redis-servers started by the tests on free ports)."""
    if redis_cli() is None:
        pytest.skip("no redis-cli on PATH to create a Redis Cluster with")
    cluster = RedisCluster(Path(tmp_path_factory.mktemp("redis-cluster")))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def redis_cluster_url(redis_cluster: RedisCluster) -> str:
    """The ``redis+cluster://`` URL of the session's private cluster, emptied for this test."""
    redis_cluster.flush()
    return redis_cluster.url


@pytest.fixture(params=["redis", "cluster"])
def shared_redis_url(request: pytest.FixtureRequest) -> str:
    """The URL of a private Redis, then of a private Redis Cluster, emptied for this test."""
    url: str = request.getfixturevalue("redis_url" if request.param == "redis" else "redis_cluster_url")
    return url


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """The emulator with the demo scenario, in this process, on a free port of 127.0.0.1."""
    emu = Emulator(Settings(host="127.0.0.1", port=0, grace_seconds=0.5))
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def channel(emulator: Emulator) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{emulator.port}") as ch:
        yield ch
