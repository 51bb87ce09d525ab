"""Several ``fleet-emulator serve`` processes on one Redis (or one Redis Cluster) act as one emulator, and
survive restarts.

Real processes, a real redis-server started by the tests, real gRPC clients: an event published through
one replica arrives on a stream opened on the other, a page token from one works on the other, a state
change through one reaches live subscribers on the other; a stream survives an emulator restart, and a
Redis restart in the middle of a stream loses nothing for a client that resumes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2, admin_pb2_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as pb_grpc
from tests.e2e.harness import EmulatorProcess, free_port, serve_command, start
from tests.redis_server import RedisServer
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE, next_message, set_soc
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

VEHICLE = SEED_VEHICLE
STREAM = HAMBURG_EVENTS


@dataclass
class Replica:
    process: EmulatorProcess
    api: pb_grpc.FleetStateServiceAsyncStub
    admin: admin_pb2_grpc.AdminServiceAsyncStub


@asynccontextmanager
async def replica(
    redis_url: str, log: Path, port: int | None = None, *options: str
) -> AsyncIterator[Replica]:
    """A real ``serve`` on the Redis (with more ``options``), for the ``async with`` block."""
    port = port or free_port()
    command = serve_command(
        "--host", "127.0.0.1", "--port", str(port), "--backend", "redis", "--redis-url", redis_url, *options
    )
    process = start(command, port, log)
    try:
        await asyncio.to_thread(process.wait_ready)
        async with grpc.aio.insecure_channel(process.address) as channel:
            yield Replica(
                process, pb_grpc.FleetStateServiceStub(channel), admin_pb2_grpc.AdminServiceStub(channel)
            )
    finally:
        code = await asyncio.to_thread(process.terminate)
    assert code == 0, process.output()


async def test_two_replicas_on_one_redis_act_as_one(shared_redis_url: str, tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(replica(shared_redis_url, tmp_path / "a.log"))
        b = await stack.enter_async_context(replica(shared_redis_url, tmp_path / "b.log"))

        events: Any = b.api.StreamVehicleEvents(pb.StreamRequest(event_id=STREAM))
        states: Any = b.api.SubscribeToVehicleStates(
            pb.SubscribeToVehicleStatesRequest(fleet_id="hamburg", vehicle_ids=[VEHICLE])
        )
        await next_message(events)
        assert (await next_message(states)).vehicle.id == VEHICLE

        change = pb.MissionProgressed(mission_id="m-7", stage=pb.MISSION_STAGE_COMPLETED)
        published = await a.admin.PublishEvent(
            admin_pb2.PublishEventRequest(event=pb.Event(vehicle_id=VEHICLE, mission_progressed=change))
        )
        arrived = await next_message(events)
        assert (arrived.message_id, arrived.event) == (published.message_id, published.event)

        await set_soc(a.admin, 42.5)
        assert (await next_message(states)).vehicle.battery.state_of_charge_percent == 42.5
        assert (await next_message(events)).event.battery_changed.state_of_charge_percent == 42.5

        first = await a.api.ListVehicles(pb.ListVehiclesRequest(fleet_id="hamburg", page_size=20))
        second = await b.api.ListVehicles(
            pb.ListVehiclesRequest(fleet_id="hamburg", page_size=20, page_token=first.next_page_token)
        )
        ids = [v.id for v in [*first.vehicles, *second.vehicles]]
        assert len(set(ids)) == len(ids) == 27
        events.cancel()
        states.cancel()


async def test_streams_are_kept_across_an_emulator_restart(redis_url: str, tmp_path: Path) -> None:
    async with replica(redis_url, tmp_path / "before.log") as before:
        position = (await before.api.PollVehicleEvents(pb.PollRequest(event_id=STREAM))).message_id
        for soc in (31, 32, 33):
            await set_soc(before.admin, soc)
    async with replica(redis_url, tmp_path / "after.log") as after:
        resumed: Any = after.api.StreamVehicleEvents(
            pb.StreamRequest(event_id=STREAM, last_message_id=position)
        )
        socs = [(await next_message(resumed)).event.battery_changed.state_of_charge_percent for _ in range(3)]
        assert socs == [31, 32, 33]
        vehicle = (await after.api.GetVehicle(pb.GetVehicleRequest(vehicle_id=VEHICLE))).vehicle
        assert vehicle.battery.state_of_charge_percent == 33
        resumed.cancel()


async def test_a_redis_restart_mid_stream_loses_nothing(own_redis: RedisServer, tmp_path: Path) -> None:
    async with replica(own_redis.url, tmp_path / "emulator.log") as emulator:
        stream: Any = emulator.api.StreamVehicleEvents(pb.StreamRequest(event_id=STREAM))
        await next_message(stream)
        await set_soc(emulator.admin, 51)
        last = await next_message(stream)

        own_redis.stop()
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await next_message(stream)
        assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
        own_redis.start()

        async def accepts_updates() -> bool:
            try:
                await set_soc(emulator.admin, 52)
                return True
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                return False

        await eventually(accepts_updates, "the emulator works again without a restart")
        resumed: Any = emulator.api.StreamVehicleEvents(
            pb.StreamRequest(event_id=STREAM, last_message_id=last.message_id)
        )
        assert (await next_message(resumed)).event.battery_changed.state_of_charge_percent == 52
        resumed.cancel()
