"""Vehicle commands (seed 000) through gRPC, on both backends: preconditions, counts, events with the flow
id, idempotency keys, lock state, v1 as well as v2, and v1beta4 streams that meet a command's event."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
import pytest

from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2 as v1
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2_grpc as v1_grpc
from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2 as v1beta4
from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2_grpc as v1beta4_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from fleet_emulator.api.convert import timestamp
from tests.api.commanding import (
    ASLEEP,
    OFFLINE,
    OTHER_VEHICLE,
    UNKNOWN_VEHICLE,
    bad_fields,
    events_since,
    failure,
    headers,
    position,
    precondition_of,
    reason,
    set_connectivity,
)
from tests.api.conftest import START, Target
from tests.rich_errors import error_info, rich_status
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE, next_message, set_soc

COMMANDS = ["LockVehicle", "UnlockVehicle", "HonkHorn", "FlashLights"]
NAMES: dict[int, str] = {ASLEEP: "CONNECTIVITY_STATE_ASLEEP", OFFLINE: "CONNECTIVITY_STATE_OFFLINE"}


async def command(
    target: Target, rpc: str, vehicle_id: str = SEED_VEHICLE, key: str = "", flow_id: str = ""
) -> Any:
    """Call one of the command RPCs of v2; its response."""
    request = getattr(pb, f"{rpc}Request")(vehicle_id=vehicle_id, idempotency_key=key)
    return await getattr(target.api, rpc)(request, metadata=headers(flow_id=flow_id))


def executed(events: list[Any]) -> list[pb.CommandResult]:
    return [e.command_executed.result for e in events if e.WhichOneof("change") == "command_executed"]


@pytest.mark.parametrize("rpc", COMMANDS)
@pytest.mark.parametrize(
    ("state", "expected"),
    [(ASLEEP, "VEHICLE_ASLEEP"), (OFFLINE, "VEHICLE_OFFLINE")],
    ids=["asleep", "offline"],
)
async def test_a_command_needs_an_online_vehicle(target: Target, rpc: str, state: int, expected: str) -> None:
    await set_connectivity(target.admin, SEED_VEHICLE, state)
    since = await position(target.api)
    error = await failure(command(target, rpc))
    assert reason(error) == (grpc.StatusCode.FAILED_PRECONDITION, expected)
    violation = precondition_of(error)
    assert (violation.type, violation.subject) == ("VEHICLE_STATE", f"vehicles/{SEED_VEHICLE}")
    assert violation.description
    metadata = error_info(error).metadata
    assert (metadata["vehicle_id"], metadata["connectivity"]) == (SEED_VEHICLE, NAMES[state])
    assert await events_since(target.api, since) == []


async def test_every_honk_counts_and_emits_an_event_with_the_calls_flow_id(target: Target) -> None:
    since = await position(target.api)
    first = (await command(target, "HonkHorn", flow_id="honk-1")).result
    second = (await command(target, "HonkHorn", flow_id="honk-2")).result
    flash = (await command(target, "FlashLights")).result
    assert [first.execution_count, second.execution_count, flash.execution_count] == [1, 2, 1]
    assert (first.command, first.vehicle_id, first.execute_time) == (
        pb.VEHICLE_COMMAND_HONK_HORN,
        SEED_VEHICLE,
        timestamp(START),
    )
    assert uuid.UUID(first.command_id) != uuid.UUID(second.command_id)
    events = await events_since(target.api, since)
    assert executed(events) == [first, second, flash]
    assert [e.flow_id for e in events][:2] == ["honk-1", "honk-2"]


async def test_a_retry_with_the_idempotency_key_returns_the_first_result_and_does_nothing(
    target: Target,
) -> None:
    since = await position(target.api)
    first = await command(target, "HonkHorn", key="honk-once")
    retry = await command(target, "HonkHorn", key="honk-once")
    assert retry.result == first.result
    assert executed(await events_since(target.api, since)) == [first.result]
    assert (await command(target, "HonkHorn")).result.execution_count == 2


async def test_an_idempotency_key_is_not_reused_for_another_command_or_vehicle(target: Target) -> None:
    await command(target, "HonkHorn", key="mine")
    for call, first_use in (
        (command(target, "FlashLights", key="mine"), "HONK_HORN"),
        (command(target, "HonkHorn", OTHER_VEHICLE, key="mine"), SEED_VEHICLE),
    ):
        error = await failure(call)
        assert reason(error) == (grpc.StatusCode.INVALID_ARGUMENT, "IDEMPOTENCY_KEY_REUSED")
        assert bad_fields(error) == ["idempotency_key"]
        assert first_use not in str(rich_status(error)), "nothing about the key's first use leaks"


async def test_idempotency_keys_are_kept_per_namespace(target: Target) -> None:
    await command(target, "HonkHorn", key="shared")
    request = pb.FlashLightsRequest(vehicle_id=SEED_VEHICLE, idempotency_key="shared")
    elsewhere = await target.api.FlashLights(request, metadata=headers("commands-elsewhere"))
    assert elsewhere.result.execution_count == 1


async def test_bad_requests_name_every_field(target: Target) -> None:
    error = await failure(command(target, "HonkHorn", "nope", key="k" * 201))
    assert reason(error) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID")
    assert bad_fields(error) == ["vehicle_id", "idempotency_key"]
    assert (await command(target, "HonkHorn", key="k" * 200)).result.execution_count == 1
    missing = await failure(command(target, "HonkHorn", UNKNOWN_VEHICLE))
    assert reason(missing) == (grpc.StatusCode.NOT_FOUND, "VEHICLE_NOT_FOUND")


async def test_lock_and_unlock_set_the_lock_state(target: Target) -> None:
    since = await position(target.api)
    unlocked = await command(target, "UnlockVehicle", OTHER_VEHICLE, flow_id="unlock-1")
    assert unlocked.vehicle.lock_state == pb.LOCK_STATE_UNLOCKED
    locked = await command(target, "LockVehicle", OTHER_VEHICLE)
    again = await command(target, "LockVehicle", OTHER_VEHICLE)
    assert again.vehicle == locked.vehicle  # already locked: same state, same etag
    assert [locked.result.execution_count, again.result.execution_count] == [1, 2]
    events = await events_since(target.api, since)
    kinds = [e.WhichOneof("change") for e in events]
    assert kinds == [
        "lock_changed",
        "command_executed",
        "lock_changed",
        "command_executed",
        "command_executed",
    ]
    assert [e.flow_id for e in events[:2]] == ["unlock-1", "unlock-1"]
    assert events[0].lock_changed.lock_state == pb.LOCK_STATE_UNLOCKED


async def test_v1_executes_commands_on_the_same_state(target: Target) -> None:
    api = v1_grpc.FleetStateServiceStub(target.channel)
    await command(target, "HonkHorn")
    response = await api.HonkHorn(v1.HonkHornRequest(vehicle_id=SEED_VEHICLE))
    assert response.result.execution_count == 2
    assert response.vehicle.configuration.seats == 6


async def test_v1beta4_streams_and_polls_carry_a_commands_event_without_its_change(target: Target) -> None:
    old = v1beta4_grpc.FleetStateServiceStub(target.channel)
    stream = old.StreamVehicleEvents(v1beta4.StreamRequest(event_id=HAMBURG_EVENTS))
    start = (await next_message(stream)).message_id
    await command(target, "HonkHorn", flow_id="honk-for-old")
    await set_soc(target.admin, 42)

    honked = await next_message(stream)
    assert honked.event.WhichOneof("change") is None  # a kind v1beta4 does not know: ignored by its clients
    assert (honked.event.vehicle_id, honked.event.flow_id) == (SEED_VEHICLE, "honk-for-old")
    charged = await next_message(stream)
    assert charged.event.battery_changed.state_of_charge_percent == 42
    stream.cancel()
    polled = await old.PollVehicleEvents(v1beta4.PollRequest(event_id=HAMBURG_EVENTS, last_message_id=start))
    assert [e.WhichOneof("change") for e in polled.events] == [None, "battery_changed"]
    assert polled.message_id == charged.message_id
