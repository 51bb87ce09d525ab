"""Two emulators on one Redis, or on one Redis Cluster, act as one: page tokens travel between them and
survive a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as pb_grpc
from fleet_emulator.server import Emulator, Settings


@asynccontextmanager
async def replica(redis_url: str) -> AsyncIterator[pb_grpc.FleetStateServiceAsyncStub]:
    emulator = Emulator(Settings(host="127.0.0.1", port=0, backend="redis", redis_url=redis_url))
    await emulator.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{emulator.port}") as channel:
            yield pb_grpc.FleetStateServiceStub(channel)
    finally:
        await emulator.stop()


async def test_a_page_token_from_one_replica_works_on_the_other(shared_redis_url: str) -> None:
    async with replica(shared_redis_url) as first, replica(shared_redis_url) as second:
        page_one = await first.ListVehicles(pb.ListVehiclesRequest(fleet_id="hamburg", page_size=20))
        page_two = await second.ListVehicles(
            pb.ListVehiclesRequest(fleet_id="hamburg", page_size=20, page_token=page_one.next_page_token)
        )
    ids = [v.id for v in [*page_one.vehicles, *page_two.vehicles]]
    assert len(ids) == len(set(ids)) == 27
    assert page_two.next_page_token == ""


async def test_state_and_tokens_survive_an_emulator_restart(shared_redis_url: str) -> None:
    async with replica(shared_redis_url) as before:
        first = await before.ListVehicles(pb.ListVehiclesRequest(fleet_id="hamburg", page_size=5))
        fleet = (await before.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"))).fleet
    async with replica(shared_redis_url) as after:
        assert (await after.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"))).fleet == fleet
        request = pb.ListVehiclesRequest(fleet_id="hamburg", page_size=5, page_token=first.next_page_token)
        second = await after.ListVehicles(request)
    assert second.vehicles[0].id > first.vehicles[-1].id
