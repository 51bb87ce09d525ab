"""``--redis-wait-replicas N`` (``RedisBackends(url, N)``): every write waits for N replicas (``WAIT`` on the
connection that wrote) before it is acknowledged; fewer within the time-out is ``Unavailable``, and the start
waits until every master has N replicas. On one Redis with a replica and on a Redis Cluster, the writes of
each kind (one command, a transaction, a script) are followed by a ``WAIT`` each."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from fleet_emulator.backends.factory import BackendUnreachable, RedisBackends
from fleet_emulator.backends.redis_clients import WAIT_TIMEOUT
from fleet_emulator.domain.errors import Unavailable
from fleet_emulator.domain.message_ids import ZERO
from fleet_emulator.domain.models import Fleet
from fleet_emulator.domain.paging import PageCursor
from tests.contract.test_event_log import FOREVER, T0, event
from tests.contract.test_state_store import NOW, vehicle
from tests.redis_cluster import RedisCluster
from tests.redis_server import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test with one replica (in sync once ``connect`` returns)."""
    (tmp_path / "master").mkdir()
    (tmp_path / "replica").mkdir()
    master = RedisServer(tmp_path / "master", "--repl-diskless-sync-delay", "0")
    master.start()
    replica = RedisServer(
        tmp_path / "replica", "--replicaof", "127.0.0.1", str(master.port), "--appendonly", "no"
    )
    replica.start()
    try:
        yield master
    finally:
        replica.stop()
        master.stop()


def info(port: int, section: str) -> dict[str, Any]:
    with redis.Redis(host="127.0.0.1", port=port, decode_responses=True) as client:
        found: dict[str, Any] = client.info(section)
        return found


def waits(ports: list[int]) -> int:
    """How many WAITs the servers on ``ports`` have run."""
    return sum(int(info(p, "commandstats").get("cmdstat_wait", {}).get("calls", 0)) for p in ports)


async def write_one_of_each(backends: RedisBackends) -> None:
    backend = backends("")
    try:
        await backend.state.save_cursor("t", PageCursor("fleets", "a", NOW), timedelta(minutes=1))  # SET
        await backend.state.put_all([Fleet("a", "A", "City", "UTC", NOW)], [vehicle(1)])  # transactions
        await backend.events.append("s", event(0), T0, FOREVER)  # a script
    finally:
        await backend.close()


async def test_each_write_waits_for_the_replica(replicated: RedisServer) -> None:
    backends = RedisBackends(replicated.url, wait_replicas=1)
    try:
        await backends.connect(timeout_s=10)  # until the replica is in sync
        await backends("").events.append("warm-up", event(0), T0, FOREVER)  # the script is loaded
        before = waits([replicated.port])
        await write_one_of_each(backends)
        assert waits([replicated.port]) - before == 4  # the cursor, a fleet, a vehicle, the event
        assert (await backends("").events.read("s", ZERO, 10))[0].event == event(0)
    finally:
        await backends.close()


async def test_each_write_waits_for_a_replica_on_a_cluster(
    redis_cluster: RedisCluster, redis_cluster_url: str
) -> None:
    backends = RedisBackends(redis_cluster_url, wait_replicas=1)
    ports = [n.port for n in redis_cluster.masters()]
    try:
        await backends.connect(timeout_s=5)
        await backends("").events.append("warm-up", event(0), T0, FOREVER)  # the script is loaded
        before = waits(ports)
        await write_one_of_each(backends)
        assert waits(ports) - before == 4
    finally:
        await backends.close()


async def test_a_write_no_replica_acknowledges_in_time_is_unavailable(redis_url: str) -> None:
    backends = RedisBackends(redis_url, wait_replicas=1)  # a Redis without replicas
    try:
        began = time.monotonic()
        with pytest.raises(Unavailable) as failed:
            await backends("").events.append("s", event(0), T0, FOREVER)
        assert time.monotonic() - began >= WAIT_TIMEOUT.total_seconds() * 0.9
        assert failed.value.metadata["cause"] == "NotReplicated"
        assert "replicate" in failed.value.message
    finally:
        await backends.close()


async def test_the_start_waits_for_the_replicas_asked_for(redis_url: str) -> None:
    backends = RedisBackends(redis_url, wait_replicas=1)
    try:
        with pytest.raises(BackendUnreachable, match="--redis-wait-replicas asks for 1"):
            await backends.connect(timeout_s=0.3)
    finally:
        await backends.close()
