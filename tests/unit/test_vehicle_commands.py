"""The domain of vehicle commands without gRPC: wake-up delays, keyed locks, races within a process on a
store that yields between read and write, the poor-connection rule, and conversions of the new kinds."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2 as v1beta4_pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2_pb
from fleet_emulator.api.convert import VersionAdapter
from fleet_emulator.backends.base import Backend
from fleet_emulator.backends.memory import MemoryStateStore
from fleet_emulator.backends.memory_control import MemoryControlStore
from fleet_emulator.backends.memory_events import MemoryEventLog, MemoryStateFeed
from fleet_emulator.domain import faults
from fleet_emulator.domain.clock import EmulatorClock
from fleet_emulator.domain.codec import decode_as, encode
from fleet_emulator.domain.emulation import Emulation
from fleet_emulator.domain.errors import Aborted, EmulatorError, InvalidArgument
from fleet_emulator.domain.events import CommandExecuted, CommandResult, Event, VehicleCommand
from fleet_emulator.domain.field_paths import FieldPath
from fleet_emulator.domain.keyed_locks import KeyedLocks
from fleet_emulator.domain.models import PendingWakeUp, Vehicle
from fleet_emulator.domain.policies import DEFAULT_POLICIES
from fleet_emulator.domain.scenario import load_scenario
from fleet_emulator.domain.wake_ups import wake_up_delay

NOW = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
VEHICLE = "94d36e21-ca69-4a5b-b2b7-8068122e7362"
V1BETA4 = VersionAdapter("v1beta4", v1beta4_pb, spec_field="configuration")
V2 = VersionAdapter("v2", v2_pb, spec_field="properties")


class YieldingStore(MemoryStateStore):
    """The memory store, giving other tasks a turn after every read, as a networked store would."""

    async def get_vehicle(self, vehicle_id: str) -> Vehicle | None:
        found = await super().get_vehicle(vehicle_id)
        await asyncio.sleep(0)
        return found

    async def remember_command(self, key: str, record: str, now: datetime, until: datetime) -> str | None:
        found = await super().remember_command(key, record, now, until)
        await asyncio.sleep(0)
        return found


async def yielding_emulation() -> Emulation:
    backend = Backend(YieldingStore(), MemoryEventLog(), MemoryStateFeed(), MemoryControlStore())
    built = Emulation.build(backend, EmulatorClock(NOW))
    await built.fleets.seed(load_scenario(None, NOW))
    return built


def test_wake_up_delays_lie_within_the_bounds_and_repeat() -> None:
    delays = [wake_up_delay(VEHICLE, n, DEFAULT_POLICIES) for n in range(1, 21)]
    assert all(timedelta(seconds=10) <= d <= timedelta(seconds=60) for d in delays)
    assert delays == [wake_up_delay(VEHICLE, n, DEFAULT_POLICIES) for n in range(1, 21)]
    assert len(set(delays)) > 1
    fixed = dataclasses.replace(DEFAULT_POLICIES, wake_up_delay_min=timedelta(seconds=3))
    fixed = dataclasses.replace(fixed, wake_up_delay_max=timedelta(seconds=3))
    assert wake_up_delay(VEHICLE, 7, fixed) == timedelta(seconds=3)


async def test_keyed_locks_serialize_one_key_and_are_freed() -> None:
    locks, order = KeyedLocks(), []

    async def hold(key: str, name: str) -> None:
        async with locks.hold(key):
            order.append(f"{name}+")
            await asyncio.sleep(0)
            order.append(f"{name}-")

    await asyncio.gather(hold("a", "1"), hold("a", "2"), hold("b", "3"))
    assert order.index("1-") < order.index("2+")
    assert len(locks) == 0


async def test_two_updates_based_on_one_etag_do_not_both_apply() -> None:
    emulation = await yielding_emulation()
    etag = (await emulation.fleets.get_vehicle(VEHICLE)).etag
    paths = [FieldPath("label", "label")]
    sources = [Vehicle(id=VEHICLE, label=f"racer-{n}", fleet_id="") for n in range(2)]
    outcomes = await asyncio.gather(
        *(emulation.edits.update(VEHICLE, s, paths, etag) for s in sources), return_exceptions=True
    )
    assert sorted(type(o).__name__ for o in outcomes) == [Aborted.__name__, Vehicle.__name__]


async def test_two_first_uses_of_an_idempotency_key_execute_once() -> None:
    emulation = await yielding_emulation()
    results = await asyncio.gather(
        *(emulation.commands.execute(VEHICLE, VehicleCommand.HONK_HORN, "same-key") for _ in range(3))
    )
    assert len({result for result, _ in results}) == 1
    assert await emulation.backend.state.count_command(VEHICLE, "HONK_HORN") == 2  # 1 executed, then this


async def test_a_reused_key_names_the_field() -> None:
    commands = (await yielding_emulation()).commands
    await commands.execute(VEHICLE, VehicleCommand.HONK_HORN, "k")
    with pytest.raises(InvalidArgument) as caught:
        await commands.execute(VEHICLE, VehicleCommand.FLASH_LIGHTS, "k")
    assert [v.field for v in caught.value.violations] == ["idempotency_key"]


@pytest.mark.parametrize(
    ("method", "streaming", "acts"),
    [
        ("moia.fleet.state.v2.FleetStateService/HonkHorn", False, True),
        ("moia.fleet.state.v1.FleetStateService/UpdateVehicle", False, True),
        ("moia.fleet.state.v2.FleetStateService/GetVehicle", False, False),
        ("moia.fleet.state.v2.FleetStateService/StreamVehicleEvents", True, False),
    ],
)
def test_a_poor_connection_acts_on_unary_commands_only(method: str, streaming: bool, acts: bool) -> None:
    rule = faults.FaultRule("*", faults.PoorConnection(executed=True))
    assert rule.matches(f"/{method}", streaming, "", "") is acts


def test_a_poor_connection_fails_with_its_code() -> None:
    lost = faults.poor_connection_error(faults.PoorConnection(executed=False, code=faults.UNAVAILABLE))
    late = faults.poor_connection_error(faults.PoorConnection(executed=True))
    assert [(e.code.value, e.reason.name) for e in (lost, late)] == [
        (14, "CONNECTION_LOST"),
        (4, "POOR_CONNECTION"),
    ]
    with pytest.raises(EmulatorError):
        faults.check_rule(faults.FaultRule("HonkHorn", faults.PoorConnection(executed=True, code=13)))


def test_a_command_event_converts_in_v2_and_leaves_the_change_unset_in_v1beta4() -> None:
    result = CommandResult("c-1", VehicleCommand.FLASH_LIGHTS, VEHICLE, 3, NOW)
    event = Event("e-1", VEHICLE, "hamburg", NOW, NOW, "flow-1", CommandExecuted(result))
    new = V2.event(event)
    assert (new.command_executed.result.command, new.command_executed.result.execution_count) == (
        v2_pb.VEHICLE_COMMAND_FLASH_LIGHTS,
        3,
    )
    assert V2.event_from(new) == event
    old = V1BETA4.event(event)
    assert (old.WhichOneof("change"), old.id, old.flow_id) == (None, "e-1", "flow-1")
    assert decode_as(Event, encode(event)) == event


def test_a_pending_wake_up_is_stored_but_in_no_api() -> None:
    vehicle = Vehicle(id=VEHICLE, label="429", fleet_id="hamburg", wake_up=PendingWakeUp(NOW, "flow-1"))
    assert decode_as(Vehicle, encode(vehicle)) == vehicle
    stored_before_it_existed = {k: v for k, v in encode(vehicle).items() if k != "wake_up"}
    assert decode_as(Vehicle, stored_before_it_existed).wake_up is None
    assert V2.vehicle_from(V2.vehicle(vehicle)) == dataclasses.replace(vehicle, wake_up=None)
