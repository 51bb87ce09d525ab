"""Redis faults are handled, not hidden (issue: streams on Redis): UNAVAILABLE with RetryInfo while Redis
is down, streams end with UNAVAILABLE, health NOT_SERVING; all well again when it is back, and a client
that resumes with its last message id loses nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as pb_grpc
from tests.emulators import on_redis
from tests.redis_server import RedisServer
from tests.rich_errors import details_of, error_info, rich_status
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE, set_soc
from tests.waiting import DEADLINE_S, eventually

VEHICLE = SEED_VEHICLE
STREAM = HAMBURG_EVENTS


async def test_redis_restart_in_the_middle_of_a_stream(own_redis: RedisServer) -> None:
    async with on_redis(own_redis.url) as (_, channel):
        api = pb_grpc.FleetStateServiceStub(channel)
        admin = admin_pb2_grpc.AdminServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)

        async def health_is(status: int) -> bool:
            answer = await health.Check(
                health_pb2.HealthCheckRequest(service="moia.fleet.state.v2.FleetStateService")
            )
            return bool(answer.status == status)

        stream: Any = api.StreamVehicleEvents(pb.StreamRequest(event_id=STREAM))
        states: Any = api.SubscribeToVehicleStates(pb.SubscribeToVehicleStatesRequest(fleet_id="hamburg"))
        await asyncio.wait_for(stream.read(), 5)
        for _ in range(27):
            await asyncio.wait_for(states.read(), 5)
        await set_soc(admin, 11)
        seen: Any = await asyncio.wait_for(stream.read(), 5)
        assert seen.event.battery_changed.state_of_charge_percent == 11
        changed = await asyncio.wait_for(states.read(), 5)
        assert changed.vehicle.battery.state_of_charge_percent == 11

        own_redis.stop()

        for call in (stream, states):
            with pytest.raises(grpc.aio.AioRpcError) as ended:
                await asyncio.wait_for(call.read(), DEADLINE_S)
            assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_info(ended.value).reason == "BACKEND_UNAVAILABLE"
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await api.GetVehicle(pb.GetVehicleRequest(vehicle_id=VEHICLE))
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        [retry] = details_of(rich_status(failed.value), error_details_pb2.RetryInfo)
        assert retry.retry_delay.seconds >= 1
        await eventually(
            lambda: health_is(health_pb2.HealthCheckResponse.NOT_SERVING), "health is NOT_SERVING"
        )

        own_redis.start()

        await eventually(lambda: health_is(health_pb2.HealthCheckResponse.SERVING), "health is SERVING")
        for soc in (12, 13):
            await set_soc(admin, soc)
        resumed: Any = api.StreamVehicleEvents(
            pb.StreamRequest(event_id=STREAM, last_message_id=seen.message_id)
        )
        missed = [await asyncio.wait_for(resumed.read(), 5) for _ in range(2)]
        assert [m.event.battery_changed.state_of_charge_percent for m in missed] == [12, 13]
        resumed.cancel()
        vehicle = (await api.GetVehicle(pb.GetVehicleRequest(vehicle_id=VEHICLE))).vehicle
        assert vehicle.battery.state_of_charge_percent == 13
