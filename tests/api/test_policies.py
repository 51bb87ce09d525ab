"""The admin service's policies and the unknown-values switch, through gRPC on both backends."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, unknown_fields
from google.rpc import error_details_pb2

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as adm
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2 as v1
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2_grpc as v1_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from fleet_emulator.api.surprises import UNKNOWN_ENUM
from tests.api.conftest import Target
from tests.rich_errors import details_of, error_info, rich_status
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE, next_message, set_soc


def ns(name: str) -> tuple[tuple[str, str], ...]:
    return (("x-emulator-namespace", name),)


def seconds(value: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=value)


async def update(target: Target, name: str, paths: list[str], **policies: Any) -> adm.Policies:
    request = adm.UpdatePoliciesRequest(
        policies=adm.Policies(**policies), update_mask=field_mask_pb2.FieldMask(paths=paths)
    )
    return (await target.admin.UpdatePolicies(request, metadata=ns(name))).policies


def unknown_numbers(message: Any) -> list[int]:
    found = unknown_fields.UnknownFieldSet(message)
    return [found[i].field_number for i in range(len(found))]


async def test_defaults_are_no_auth_no_limits_and_seed_000_wake_up_delays(target: Target) -> None:
    policies = (await target.admin.GetPolicies(adm.GetPoliciesRequest())).policies
    assert policies.auth_mode == adm.AUTH_MODE_NONE
    assert list(policies.rate_limits) == []
    assert (policies.wake_up_delay_min.seconds, policies.wake_up_delay_max.seconds) == (10, 60)
    assert (policies.unknown_values, policies.poll_interval.seconds) == (False, 5)


async def test_update_changes_only_the_masked_policies_of_its_namespace(target: Target) -> None:
    changed = await update(
        target,
        "pol-a",
        ["auth_mode", "poll_interval"],
        auth_mode=adm.AUTH_MODE_JWT,
        poll_interval=seconds(30),
    )
    assert (changed.auth_mode, changed.poll_interval.seconds) == (adm.AUTH_MODE_JWT, 30)
    assert changed.wake_up_delay_max.seconds == 60  # not in the mask: kept
    other = (await target.admin.GetPolicies(adm.GetPoliciesRequest(), metadata=ns("pol-b"))).policies
    assert other.auth_mode == adm.AUTH_MODE_NONE


async def test_a_preset_and_explicit_rules_set_the_rate_limits(target: Target) -> None:
    request = adm.UpdatePoliciesRequest(
        rate_limit_preset="seed-001", update_mask=field_mask_pb2.FieldMask(paths=["rate_limits"])
    )
    preset = (await target.admin.UpdatePolicies(request, metadata=ns("pol-c"))).policies
    by_method = {r.method: (r.requests, r.period, r.burst) for r in preset.rate_limits}
    assert by_method["GetFleet"] == (1, adm.RATE_PERIOD_SECOND, 2)
    assert by_method["PollVehicleEvents"] == (30, adm.RATE_PERIOD_MINUTE, 10)
    rule = adm.RateLimit(method="*", requests=5, period=adm.RATE_PERIOD_MINUTE, burst=1)
    explicit = await update(target, "pol-c", ["rate_limits"], rate_limits=[rule])
    assert list(explicit.rate_limits) == [rule]


async def test_every_invalid_policy_is_named_in_one_bad_request(target: Target) -> None:
    bad_rule = adm.RateLimit(method="", requests=0, period=adm.RATE_PERIOD_UNSPECIFIED, burst=-1)
    request = adm.UpdatePoliciesRequest(
        policies=adm.Policies(
            auth_mode=adm.AUTH_MODE_UNSPECIFIED,
            rate_limits=[bad_rule],
            wake_up_delay_min=seconds(90),
            wake_up_delay_max=seconds(30),
            poll_interval=seconds(0),
        ),
        update_mask=field_mask_pb2.FieldMask(paths=[]),  # empty: every policy
        rate_limit_preset="nope",
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await target.admin.UpdatePolicies(request, metadata=ns("pol-d"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).reason == "FIELD_INVALID"
    (bad,) = details_of(rich_status(caught.value), error_details_pb2.BadRequest)
    assert {v.field for v in bad.field_violations} == {
        "policies.auth_mode",
        "policies.rate_limits[0].method",
        "policies.rate_limits[0].requests",
        "policies.rate_limits[0].period",
        "policies.rate_limits[0].burst",
        "rate_limit_preset",
        "policies.wake_up_delay_min",
        "policies.poll_interval",
    }
    unchanged = (await target.admin.GetPolicies(adm.GetPoliciesRequest(), metadata=ns("pol-d"))).policies
    assert unchanged.auth_mode == adm.AUTH_MODE_NONE


async def test_an_unknown_mask_path_is_invalid(target: Target) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await update(target, "pol-e", ["colour"])
    (bad,) = details_of(rich_status(caught.value), error_details_pb2.BadRequest)
    assert [v.field for v in bad.field_violations] == ["update_mask"]


async def test_reset_restores_the_starting_policies(target: Target) -> None:
    await update(target, "pol-f", ["unknown_values"], unknown_values=True)
    await target.admin.ResetEmulator(adm.ResetEmulatorRequest(), metadata=ns("pol-f"))
    policies = (await target.admin.GetPolicies(adm.GetPoliciesRequest(), metadata=ns("pol-f"))).policies
    assert policies.unknown_values is False


async def test_unknown_values_reach_vehicles_fleets_and_events_in_v1_and_v2(target: Target) -> None:
    await update(target, "pol-g", ["unknown_values"], unknown_values=True)
    meta = ns("pol-g")
    v2_vehicle = (
        await target.api.GetVehicle(pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE), metadata=meta)
    ).vehicle
    v1_api = v1_grpc.FleetStateServiceStub(target.channel)
    v1_vehicle = (
        await v1_api.GetVehicle(v1.GetVehicleRequest(vehicle_id=SEED_VEHICLE), metadata=meta)
    ).vehicle
    for vehicle in (v2_vehicle, v1_vehicle):
        assert (vehicle.doors[-1].position, vehicle.doors[-1].state) == (UNKNOWN_ENUM, UNKNOWN_ENUM)
        assert unknown_numbers(vehicle) == [1000, 1001, 1002]
    listed = (
        await target.api.ListVehicles(pb.ListVehiclesRequest(fleet_id="hamburg"), metadata=meta)
    ).vehicles
    assert all(v.doors[-1].position == UNKNOWN_ENUM for v in listed)
    fleet = (await target.api.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"), metadata=meta)).fleet
    assert unknown_numbers(fleet) == [1000, 1001, 1002]
    stream = target.api.StreamVehicleEvents(pb.StreamRequest(event_id=HAMBURG_EVENTS), metadata=meta)
    start = (await next_message(stream)).message_id
    await set_soc(target.admin, 42.0, namespace="pol-g")
    event = (await next_message(stream)).event
    stream.cancel()
    assert event.battery_changed.state_of_charge_percent == 42.0
    assert unknown_numbers(event) == [1000, 1001, 1002]
    poll = pb.PollRequest(event_id=HAMBURG_EVENTS, last_message_id=start)
    [polled] = (await target.api.PollVehicleEvents(poll, metadata=meta)).events
    assert polled.id == event.id and unknown_numbers(polled) == [1000, 1001, 1002]
    states = target.api.SubscribeToVehicleStates(
        pb.SubscribeToVehicleStatesRequest(fleet_id="hamburg", vehicle_ids=[SEED_VEHICLE]), metadata=meta
    )
    state = (await next_message(states)).vehicle
    states.cancel()
    assert state.doors[-1].position == UNKNOWN_ENUM and unknown_numbers(state) == [1000, 1001, 1002]


async def test_without_the_switch_and_after_it_responses_are_plain(target: Target) -> None:
    meta = ns("pol-h")
    request = pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE)
    plain = (await target.api.GetVehicle(request, metadata=meta)).vehicle
    await update(target, "pol-h", ["unknown_values"], unknown_values=True)
    surprised = (await target.api.GetVehicle(request, metadata=meta)).vehicle
    await update(target, "pol-h", ["unknown_values"], unknown_values=False)
    again = (await target.api.GetVehicle(request, metadata=meta)).vehicle
    assert len(surprised.doors) == len(plain.doors) + 1
    assert again == plain and unknown_numbers(again) == []


@pytest.mark.parametrize("seconds", [2**62, -(2**62)])
async def test_durations_beyond_any_range_are_invalid_arguments_not_internal(
    target: Target, seconds: int
) -> None:
    huge = duration_pb2.Duration(seconds=seconds)
    calls: list[Any] = [
        target.admin.UpdatePolicies(
            adm.UpdatePoliciesRequest(
                policies=adm.Policies(poll_interval=huge),
                update_mask=field_mask_pb2.FieldMask(paths=["poll_interval"]),
            )
        ),
        target.admin.CreateFault(
            adm.CreateFaultRequest(fault=adm.Fault(method="*", latency=adm.AddLatency(delay=huge)))
        ),
        target.admin.AdvanceClock(adm.AdvanceClockRequest(by=huge)),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        assert error_info(caught.value).reason == "FIELD_INVALID"
