"""Vehicle connectivity and WakeUpVehicle (seed 000) through gRPC, on both backends and a virtual clock.

An asleep vehicle comes online after the delay ``wake_up_delay`` draws for it (deterministic, within the
namespace's bounds), not a millisecond before; the clock is moved through the admin service, which settles
the wake-ups due by then, and the change is a ConnectivityChanged event and a live state with the flow id
of the wake-up call. With the real clock, the emulator's settling loop brings it online for clients that
only watch; on Redis, a replica that did not schedule the wake-up settles it when it reads the vehicle.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import grpc

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2_grpc as admin_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as v2_grpc
from fleet_emulator.domain.clock import EmulatorClock
from fleet_emulator.domain.policies import DEFAULT_POLICIES
from fleet_emulator.domain.wake_ups import wake_up_delay
from fleet_emulator.server import Emulator, Settings
from tests.api.commanding import (
    ASLEEP,
    OFFLINE,
    ONLINE,
    advance,
    connectivity,
    events_since,
    failure,
    headers,
    position,
    precondition_of,
    reason,
    set_connectivity,
)
from tests.api.conftest import START, Target
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE, next_message

MILLISECOND = timedelta(milliseconds=1)
FIRST_DELAY = wake_up_delay(SEED_VEHICLE, 1, DEFAULT_POLICIES)


def wake_up(vehicle_id: str = SEED_VEHICLE) -> pb.WakeUpVehicleRequest:
    return pb.WakeUpVehicleRequest(vehicle_id=vehicle_id)


def test_the_delay_is_within_the_bounds_and_the_same_in_every_run() -> None:
    assert DEFAULT_POLICIES.wake_up_delay_min <= FIRST_DELAY <= DEFAULT_POLICIES.wake_up_delay_max
    assert wake_up_delay(SEED_VEHICLE, 1, DEFAULT_POLICIES) == FIRST_DELAY


async def test_an_asleep_vehicle_comes_online_exactly_when_its_wake_up_is_due(target: Target) -> None:
    for namespace in ("", "again"):  # a namespace of its own counts its wake-ups afresh: the same delay
        await set_connectivity(target.admin, SEED_VEHICLE, ASLEEP, namespace)
        woken = await target.api.WakeUpVehicle(wake_up(), metadata=headers(namespace))
        assert woken.vehicle.connectivity == ASLEEP
        await advance(target.admin, FIRST_DELAY - MILLISECOND)
        assert await connectivity(target.api, SEED_VEHICLE, namespace) == ASLEEP
        await advance(target.admin, MILLISECOND)
        assert await connectivity(target.api, SEED_VEHICLE, namespace) == ONLINE


async def test_a_due_wake_up_is_settled_before_a_read_also_without_the_admin_clock(target: Target) -> None:
    await set_connectivity(target.admin, SEED_VEHICLE, ASLEEP)
    await target.api.WakeUpVehicle(wake_up())
    await target.clock.advance(DEFAULT_POLICIES.wake_up_delay_max)
    assert await connectivity(target.api, SEED_VEHICLE) == ONLINE


async def test_a_second_wake_up_while_one_is_pending_keeps_the_first(target: Target) -> None:
    await set_connectivity(target.admin, SEED_VEHICLE, ASLEEP)
    first = await target.api.WakeUpVehicle(wake_up())
    await advance(target.admin, timedelta(seconds=5))
    second = await target.api.WakeUpVehicle(wake_up())
    assert second.vehicle == first.vehicle  # same state, same etag: nothing a client sees changed
    await advance(target.admin, FIRST_DELAY - timedelta(seconds=5))
    assert await connectivity(target.api, SEED_VEHICLE) == ONLINE


async def test_coming_online_is_an_event_and_a_live_state_with_the_wake_ups_flow_id(target: Target) -> None:
    await set_connectivity(target.admin, SEED_VEHICLE, ASLEEP)
    stream = target.api.StreamVehicleEvents(pb.StreamRequest(event_id=HAMBURG_EVENTS))
    await next_message(stream)  # the position
    live = target.api.SubscribeToVehicleStates(
        pb.SubscribeToVehicleStatesRequest(fleet_id="hamburg", vehicle_ids=[SEED_VEHICLE])
    )
    assert (await next_message(live)).vehicle.connectivity == ASLEEP
    await target.api.WakeUpVehicle(wake_up(), metadata=headers(flow_id="wake-flow-1"))
    await advance(target.admin, DEFAULT_POLICIES.wake_up_delay_max)

    event = (await next_message(stream)).event
    assert event.connectivity_changed == pb.ConnectivityChanged(previous=ASLEEP, current=ONLINE)
    assert (event.vehicle_id, event.flow_id) == (SEED_VEHICLE, "wake-flow-1")
    assert (await next_message(live)).vehicle.connectivity == ONLINE
    stream.cancel()
    live.cancel()


async def test_with_the_real_clock_a_watching_client_sees_the_vehicle_come_online() -> None:
    quick = dataclasses.replace(
        DEFAULT_POLICIES, wake_up_delay_min=timedelta(0), wake_up_delay_max=MILLISECOND
    )
    emulator = Emulator(Settings(host="127.0.0.1", port=0, grace_seconds=0.2, policies=quick))
    await emulator.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{emulator.port}") as channel:
        api, admin = v2_grpc.FleetStateServiceStub(channel), admin_grpc.AdminServiceStub(channel)
        await set_connectivity(admin, SEED_VEHICLE, ASLEEP)
        stream = api.StreamVehicleEvents(pb.StreamRequest(event_id=HAMBURG_EVENTS))
        await next_message(stream)  # the position
        await api.WakeUpVehicle(wake_up(), metadata=headers(flow_id="wake-real"))
        event = (await next_message(stream)).event  # nobody reads the vehicle: the settling loop does it
        assert (event.connectivity_changed.current, event.flow_id) == (ONLINE, "wake-real")
        stream.cancel()
    await emulator.stop()


async def test_a_wake_up_through_one_replica_comes_due_on_a_clock_moved_through_another(
    redis_url: str,
) -> None:
    """The wake-up is scheduled in Redis and the clock is Redis's: the second replica, which never saw the
    wake-up, brings the vehicle online while it moves the clock, before its AdvanceClock answers."""
    replicas = [
        Emulator(
            Settings(host="127.0.0.1", port=0, backend="redis", redis_url=redis_url), EmulatorClock(START)
        )
        for _ in range(2)
    ]
    for emulator in replicas:
        await emulator.start()
    first, second = (grpc.aio.insecure_channel(f"127.0.0.1:{e.port}") for e in replicas)
    first_api = v2_grpc.FleetStateServiceStub(first)
    await set_connectivity(admin_grpc.AdminServiceStub(first), SEED_VEHICLE, ASLEEP)
    since = await position(first_api)
    await first_api.WakeUpVehicle(wake_up(), metadata=headers(flow_id="woken-on-first"))
    assert await events_since(first_api, since) == []
    await advance(admin_grpc.AdminServiceStub(second), FIRST_DELAY)
    [event] = await events_since(first_api, since)
    assert (event.connectivity_changed.current, event.flow_id) == (ONLINE, "woken-on-first")
    for channel in (first, second):
        await channel.close(grace=None)
    for emulator in replicas:
        await emulator.stop()


async def test_an_online_vehicle_stays_as_it_is(target: Target) -> None:
    before = (await target.api.GetVehicle(pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE))).vehicle
    since = await position(target.api)
    woken = await target.api.WakeUpVehicle(wake_up())
    assert woken.vehicle == before
    assert await events_since(target.api, since) == []


async def test_an_offline_vehicle_cannot_be_woken(target: Target) -> None:
    await set_connectivity(target.admin, SEED_VEHICLE, OFFLINE)
    error = await failure(target.api.WakeUpVehicle(wake_up()))
    assert reason(error) == (grpc.StatusCode.FAILED_PRECONDITION, "VEHICLE_OFFLINE")
    violation = precondition_of(error)
    assert (violation.type, violation.subject) == ("VEHICLE_STATE", f"vehicles/{SEED_VEHICLE}")


async def test_bad_and_unknown_vehicle_ids(target: Target) -> None:
    invalid = await failure(target.api.WakeUpVehicle(wake_up("nope")))
    assert reason(invalid) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID")
    missing = await failure(target.api.WakeUpVehicle(wake_up("00000000-0000-4000-8000-000000000000")))
    assert reason(missing) == (grpc.StatusCode.NOT_FOUND, "VEHICLE_NOT_FOUND")
