"""The Prometheus metrics move by exactly what the calls did, read from the default registry.

Against the in-process emulator: calls counted by code (OK, NOT_FOUND, INVALID_ARGUMENT, an injected fault,
an admin call refused for want of the admin token, streams the client cancels) and timed, open streams up
while open and down once cancelled, events published and delivered (not the stream's first message, its
position), the journal gauges, and Redis errors and reconnects around a Redis restart.
"""

from __future__ import annotations

import gc
from typing import Any

import grpc
import pytest
from prometheus_client import REGISTRY

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as adm
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as pb_grpc
from fleet_emulator.domain.journal import ENTRY_OVERHEAD_BYTES
from fleet_emulator.server import Emulator, Settings
from fleet_emulator.telemetry.metrics import RedisLink
from tests.emulators import on_redis
from tests.redis_server import RedisServer
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE, next_message, set_soc
from tests.waiting import eventually

UNKNOWN_VEHICLE = "00000000-0000-4000-8000-000000000000"
CODES = ("OK", "NOT_FOUND", "INVALID_ARGUMENT", "UNAVAILABLE")


def value(name: str, **labels: str) -> float:
    """A sample of the default registry; 0 for one not there yet (a label child never used)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def calls(method: str, code: str, version: str = "v2", service: str = "FleetStateService") -> float:
    labels = {"service": service, "method": method, "version": version, "code": code}
    return value("fleet_emulator_calls_total", **labels)


def open_streams(kind: str) -> float:
    return value("fleet_emulator_open_streams", kind=kind)


async def failure(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call
    return failed.value


async def test_calls_are_counted_by_code_and_timed(channel: grpc.aio.Channel) -> None:
    api, admin = pb_grpc.FleetStateServiceStub(channel), admin_pb2_grpc.AdminServiceStub(channel)
    before = {code: calls("GetVehicle", code) for code in CODES}
    timed = {"service": "FleetStateService", "method": "GetVehicle", "version": "v2"}
    timed_before = value("fleet_emulator_call_duration_seconds_count", **timed)
    faults_before = calls("CreateFault", "OK", "admin", "AdminService")
    fail = adm.FailCall(code=14, message="maintenance")
    await admin.CreateFault(adm.CreateFaultRequest(fault=adm.Fault(method="GetVehicle", times=1, fail=fail)))

    injected = await failure(api.GetVehicle(pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE)))
    for _ in range(2):
        await api.GetVehicle(pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE))
    unknown = await failure(api.GetVehicle(pb.GetVehicleRequest(vehicle_id=UNKNOWN_VEHICLE)))
    malformed = await failure(api.GetVehicle(pb.GetVehicleRequest(vehicle_id="not a vehicle id")))

    codes = (injected.code(), unknown.code(), malformed.code())
    assert codes == (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
    moved = {code: calls("GetVehicle", code) - before[code] for code in CODES}
    assert moved == {"OK": 2, "NOT_FOUND": 1, "INVALID_ARGUMENT": 1, "UNAVAILABLE": 1}
    assert value("fleet_emulator_call_duration_seconds_count", **timed) - timed_before == 5
    assert calls("CreateFault", "OK", "admin", "AdminService") - faults_before == 1


async def test_admin_calls_refused_for_want_of_the_token_are_counted() -> None:
    emulator = Emulator(Settings(host="127.0.0.1", port=0, admin_token="s3cret", grace_seconds=0.5))
    await emulator.start()
    before = calls("GetClock", "UNAUTHENTICATED", "admin", "AdminService")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{emulator.port}") as channel:
            admin = admin_pb2_grpc.AdminServiceStub(channel)
            refused = await failure(admin.GetClock(adm.GetClockRequest()))
    finally:
        await emulator.stop()
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    assert calls("GetClock", "UNAUTHENTICATED", "admin", "AdminService") - before == 1


async def test_streams_are_open_until_cancelled_and_then_counted(channel: grpc.aio.Channel) -> None:
    api = pb_grpc.FleetStateServiceStub(channel)
    methods = {"events": "StreamVehicleEvents", "states": "SubscribeToVehicleStates"}
    opened = {kind: open_streams(kind) for kind in methods}
    cancelled = {kind: calls(method, "CANCELLED") for kind, method in methods.items()}
    events: Any = api.StreamVehicleEvents(pb.StreamRequest(event_id=HAMBURG_EVENTS))
    request = pb.SubscribeToVehicleStatesRequest(fleet_id="hamburg", vehicle_ids=[SEED_VEHICLE])
    states: Any = api.SubscribeToVehicleStates(request)
    await next_message(events)
    await next_message(states)
    assert {kind: open_streams(kind) - opened[kind] for kind in methods} == {"events": 1, "states": 1}

    events.cancel()
    states.cancel()

    async def closed() -> bool:
        return all(open_streams(kind) == opened[kind] for kind in methods)

    await eventually(closed, "both streams are closed")
    assert {kind: calls(method, "CANCELLED") - cancelled[kind] for kind, method in methods.items()} == {
        "events": 1,
        "states": 1,
    }


async def test_events_published_and_delivered_on_event_streams(channel: grpc.aio.Channel) -> None:
    api, admin = pb_grpc.FleetStateServiceStub(channel), admin_pb2_grpc.AdminServiceStub(channel)
    published = value("fleet_emulator_events_published_total")
    delivered = value("fleet_emulator_events_delivered_total", version="v2")
    stream: Any = api.StreamVehicleEvents(pb.StreamRequest(event_id=HAMBURG_EVENTS))
    position = await next_message(stream)
    assert not position.HasField("event")

    for soc in (40, 30):
        await set_soc(admin, soc)  # one BatteryChanged event each
    received = [await next_message(stream) for _ in range(2)]

    assert value("fleet_emulator_events_published_total") - published == 2
    assert [m.event.battery_changed.state_of_charge_percent for m in received] == [40, 30]

    async def both_delivered() -> bool:  # counted once the server resumes after sending
        return value("fleet_emulator_events_delivered_total", version="v2") - delivered >= 2

    await eventually(both_delivered, "both events are counted as delivered")
    assert value("fleet_emulator_events_delivered_total", version="v2") - delivered == 2
    stream.cancel()


async def test_journal_gauges_follow_the_journals(channel: grpc.aio.Channel) -> None:
    api, admin = pb_grpc.FleetStateServiceStub(channel), admin_pb2_grpc.AdminServiceStub(channel)
    gc.collect()  # journals of earlier tests' emulators go now, not in the middle of this test
    entries, used = value("fleet_emulator_journal_entries"), value("fleet_emulator_journal_bytes")

    for _ in range(3):
        await api.GetVehicle(pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE))

    assert value("fleet_emulator_journal_entries") - entries == 3
    assert value("fleet_emulator_journal_bytes") - used >= 3 * ENTRY_OVERHEAD_BYTES
    await admin.ClearJournal(adm.ClearJournalRequest())
    assert value("fleet_emulator_journal_entries") == entries
    assert value("fleet_emulator_journal_bytes") == used


def test_a_reconnect_is_an_answer_after_failures_once_redis_had_answered() -> None:
    link = RedisLink()
    reconnects = value("fleet_emulator_redis_reconnects_total")
    errors = value("fleet_emulator_redis_errors_total", operation="test_op")

    link.failed("test_op")  # waiting for Redis at start
    link.answered()
    assert value("fleet_emulator_redis_reconnects_total") == reconnects
    link.failed("test_op")
    link.failed("test_op")
    link.answered()
    link.answered()

    assert value("fleet_emulator_redis_reconnects_total") - reconnects == 1
    assert value("fleet_emulator_redis_errors_total", operation="test_op") - errors == 3


async def test_redis_errors_and_reconnects_around_a_redis_restart(own_redis: RedisServer) -> None:
    async with on_redis(own_redis.url) as (_, channel):
        api = pb_grpc.FleetStateServiceStub(channel)
        request = pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE)
        await api.GetVehicle(request)
        errors = value("fleet_emulator_redis_errors_total", operation="version")
        reconnects = value("fleet_emulator_redis_reconnects_total")

        own_redis.stop()
        refused = await failure(api.GetVehicle(request))
        assert refused.code() == grpc.StatusCode.UNAVAILABLE
        # the call's first read fails: its namespace's control version, read before anything else
        assert value("fleet_emulator_redis_errors_total", operation="version") - errors == 1
        assert value("fleet_emulator_redis_reconnects_total") == reconnects
        own_redis.start()

        async def reconnected() -> bool:
            return value("fleet_emulator_redis_reconnects_total") > reconnects

        await eventually(reconnected, "Redis counts as reconnected")
        assert (await api.GetVehicle(request)).vehicle.id == SEED_VEHICLE
