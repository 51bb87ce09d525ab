"""A ``fleet-emulator serve`` on a Redis Cluster with ``--redis-wait-replicas 1`` loses no acknowledged event
when the master of a stream dies mid-stream.

A cluster of its own (three masters, a replica each), a real emulator process, a real gRPC client: events
are published one after another while a client streams them. The stream's master is killed (SIGKILL); its
replica takes over (``cluster_state:ok``). Publishing fails meanwhile (``UNAVAILABLE``), and goes on failing
while the new master has no replica to acknowledge writes, until the killed node is back as its replica.
The client resumes with its ``last_message_id`` after each ``UNAVAILABLE`` and receives every event whose
publish was acknowledged, in order, without duplicates (it may also receive events whose publish failed:
they were written, their replication was not confirmed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import grpc
import pytest

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2, admin_pb2_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as pb_grpc
from fleet_emulator.backends.redis_keys import RedisKeys
from tests.e2e.test_replicas import Replica, replica
from tests.redis_cluster import RedisCluster, redis_cli, running_cluster
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE, next_message
from tests.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

RESUMABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OUT_OF_RANGE)
BEFORE, DURING, AFTER = 20, 5, 20  # events acknowledged before the kill, while it fails over, after


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """A cluster of this test alone: it kills one of its masters."""
    if redis_cli() is None:
        pytest.skip("no redis-cli on PATH to create a Redis Cluster with")
    with running_cluster(tmp_path / "cluster") as started:
        yield started


def emulator(url: str, log: Path) -> AbstractAsyncContextManager[Replica]:
    return replica(url, log, None, "--redis-wait-replicas", "1")


class Publisher:
    """Publishes one event after another, numbered; keeps the message ids of those acknowledged."""

    def __init__(self, admin: admin_pb2_grpc.AdminServiceAsyncStub) -> None:
        self.admin = admin
        self.acknowledged: list[str] = []
        self.failed = 0

    async def run(self) -> None:
        for number in range(1_000_000):
            change = pb.MissionProgressed(mission_id=f"m-{number}", stage=pb.MISSION_STAGE_COMPLETED)
            request = admin_pb2.PublishEventRequest(
                event=pb.Event(vehicle_id=SEED_VEHICLE, mission_progressed=change)
            )
            try:
                published = await self.admin.PublishEvent(request, timeout=10)
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                self.failed += 1
                await asyncio.sleep(0.05)
                continue
            self.acknowledged.append(published.message_id)

    async def until(self, count: int) -> None:
        async def enough() -> bool:
            return len(self.acknowledged) >= count

        await eventually(enough, f"{count} events are acknowledged", deadline_s=30)


class Reader:
    """Streams the events, resuming with the last message id it received whenever the stream ends."""

    def __init__(self, api: pb_grpc.FleetStateServiceAsyncStub, position: str) -> None:
        self.api = api
        self.last = position
        self.received: list[str] = []
        self.resumed = 0

    async def run(self) -> None:
        while True:
            call: Any = self.api.StreamVehicleEvents(
                pb.StreamRequest(event_id=HAMBURG_EVENTS, last_message_id=self.last)
            )
            try:
                async for message in call:
                    self.received.append(message.message_id)
                    self.last = message.message_id
            except grpc.aio.AioRpcError as error:
                # OUT_OF_RANGE: the last event received was written on the old master but not replicated
                # (its publish failed), and the new master has written nothing past it yet.
                if error.code() not in RESUMABLE:
                    raise
                self.resumed += 1
                await asyncio.sleep(0.1)


async def test_a_master_killed_mid_stream_loses_no_acknowledged_event(
    cluster: RedisCluster, tmp_path: Path
) -> None:
    stream_key = RedisKeys.of(cluster=True).stream(HAMBURG_EVENTS)
    async with emulator(cluster.url, tmp_path / "serve.log") as replica:
        opened: Any = replica.api.StreamVehicleEvents(pb.StreamRequest(event_id=HAMBURG_EVENTS))
        position = (await next_message(opened)).message_id
        opened.cancel()
        publisher, reader = Publisher(replica.admin), Reader(replica.api, position)
        tasks = [asyncio.create_task(publisher.run()), asyncio.create_task(reader.run())]
        try:
            await publisher.until(BEFORE)
            master = cluster.master_of(stream_key)
            await asyncio.to_thread(cluster.kill_and_fail_over, master)
            failed_before = publisher.failed
            await asyncio.to_thread(cluster.restart, master)  # the new master's replica, from now on
            await publisher.until(len(publisher.acknowledged) + DURING + AFTER)
            acknowledged = list(publisher.acknowledged)

            async def caught_up() -> bool:
                return set(acknowledged) <= set(reader.received)

            await eventually(caught_up, "the reader has every acknowledged event", deadline_s=30)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    received = reader.received
    assert len(received) == len(set(received)), "no duplicates"
    assert received == sorted(received, key=_order), "in order"
    assert [r for r in received if r in set(acknowledged)] == acknowledged, "every acknowledged one, in order"
    assert failed_before > 0, "publishing failed while the master was gone"
    assert reader.resumed > 0, "the stream ended when its master died"


def _order(message_id: str) -> tuple[int, int]:
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq)
