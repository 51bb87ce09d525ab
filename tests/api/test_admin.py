"""The admin service through gRPC, on both backends: state, scenarios, faults, journal, clock, namespaces."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as adm
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from tests.api.conftest import START, Target
from tests.rich_errors import details_of, error_info, rich_status
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE, next_message, set_soc

NEW_VEHICLE = "0b9a5a7e-8f1e-4c59-9d53-5b3c1f2a9e01"


async def failure(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def ns(name: str) -> tuple[tuple[str, str], ...]:
    return (("x-emulator-namespace", name),)


async def test_fleets_and_vehicles_are_created_changed_and_deleted(target: Target) -> None:
    created = await target.admin.CreateFleet(
        adm.CreateFleetRequest(fleet=pb.Fleet(id="berlin", city="Berlin"))
    )
    assert (created.fleet.id, created.fleet.display_name, created.fleet.vehicle_events_id) == (
        "berlin",
        "berlin",
        "fleets/berlin/vehicle-events",
    )
    mask = field_mask_pb2.FieldMask(paths=["display_name"])
    await target.admin.UpdateFleet(
        adm.UpdateFleetRequest(fleet=pb.Fleet(id="berlin", display_name="B"), update_mask=mask)
    )
    vehicle = pb.Vehicle(id=NEW_VEHICLE, fleet_id="berlin", label="7")
    made = (await target.admin.CreateVehicle(adm.CreateVehicleRequest(vehicle=vehicle))).vehicle
    assert (made.label, made.etag != "") == ("7", True)
    fleet = (await target.api.GetFleet(pb.GetFleetRequest(fleet_id="berlin"))).fleet
    assert (fleet.display_name, fleet.vehicle_count) == ("B", 1)
    again = await failure(target.admin.CreateVehicle(adm.CreateVehicleRequest(vehicle=vehicle)))
    assert again.code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_info(again).reason == "VEHICLE_ALREADY_EXISTS"
    await target.admin.DeleteVehicle(adm.DeleteVehicleRequest(vehicle_id=NEW_VEHICLE))
    gone = await failure(target.api.GetVehicle(pb.GetVehicleRequest(vehicle_id=NEW_VEHICLE)))
    assert gone.code() == grpc.StatusCode.NOT_FOUND
    await target.admin.DeleteFleet(adm.DeleteFleetRequest(fleet_id="berlin"))
    missing = await failure(target.admin.DeleteFleet(adm.DeleteFleetRequest(fleet_id="berlin")))
    assert error_info(missing).reason == "FLEET_NOT_FOUND"


async def test_a_vehicle_in_a_missing_fleet_is_refused(target: Target) -> None:
    vehicle = pb.Vehicle(fleet_id="atlantis")
    error = await failure(target.admin.CreateVehicle(adm.CreateVehicleRequest(vehicle=vehicle)))
    assert error.code() == grpc.StatusCode.NOT_FOUND


async def test_load_scenario_replaces_the_state_and_reset_returns_to_it(target: Target) -> None:
    yaml = "name: small\nfleets:\n  - id: kiel\n    generate: {count: 3}\n"
    loaded = await target.admin.LoadScenario(adm.LoadScenarioRequest(yaml=yaml, source="small.yaml"))
    assert (loaded.name, loaded.fleet_count, loaded.vehicle_count) == ("small", 1, 3)
    fleets = (await target.api.ListFleets(pb.ListFleetsRequest())).fleets
    assert [f.id for f in fleets] == ["kiel"]
    await target.admin.DeleteFleet(adm.DeleteFleetRequest(fleet_id="kiel"))
    reset = await target.admin.ResetEmulator(adm.ResetEmulatorRequest())
    assert (reset.fleet_count, reset.vehicle_count) == (1, 3)
    assert [f.id for f in (await target.api.ListFleets(pb.ListFleetsRequest())).fleets] == ["kiel"]


async def test_a_broken_scenario_names_each_problem_with_its_line(target: Target) -> None:
    yaml = "fleets:\n  - id: kiel\n    generate: {count: many}\n    colour: red\n"
    error = await failure(target.admin.LoadScenario(adm.LoadScenarioRequest(yaml=yaml, source="bad.yaml")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    [bad] = details_of(rich_status(error), error_details_pb2.BadRequest)
    problems = [v.description for v in bad.field_violations]
    assert any(p.startswith("bad.yaml:3: fleets[0].generate.count") for p in problems), problems
    assert any(p.startswith("bad.yaml:4: fleets[0].colour") for p in problems), problems
    assert [f.id for f in (await target.api.ListFleets(pb.ListFleetsRequest())).fleets] == [
        "hamburg",
        "hanover",
    ]


async def add_fault(target: Target, **fields: Any) -> adm.Fault:
    response = await target.admin.CreateFault(adm.CreateFaultRequest(fault=adm.Fault(**fields)))
    fault: adm.Fault = response.fault
    return fault


async def test_a_fault_fails_the_next_calls_with_code_message_and_details(target: Target) -> None:
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=3))
    fail = adm.FailCall(code=14, message="maintenance", reason="UPSTREAM_DOWN")
    fail.details.add().Pack(retry)
    await add_fault(target, method="GetVehicle", vehicle_id=SEED_VEHICLE, times=2, fail=fail)
    request = pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE)
    for _ in range(2):
        error = await failure(target.api.GetVehicle(request))
        assert (error.code(), error.details()) == (grpc.StatusCode.UNAVAILABLE, "maintenance")
        assert error_info(error).reason == "UPSTREAM_DOWN"
        [sent] = details_of(rich_status(error), error_details_pb2.RetryInfo)
        assert sent.retry_delay.seconds == 3
    assert (await target.api.GetVehicle(request)).vehicle.id == SEED_VEHICLE
    other = pb.GetVehicleRequest(vehicle_id="76350d1a-8df5-4217-8d58-207f4e1e0b90")
    assert (await target.api.GetVehicle(other)).vehicle.label == "1005"
    assert list((await target.admin.ListFaults(adm.ListFaultsRequest())).faults) == []


async def test_a_fault_until_deleted_and_its_hits(target: Target) -> None:
    fault = await add_fault(
        target, method="*", fleet_id="hanover", fail=adm.FailCall(code=8, message="slow down")
    )
    for _ in range(3):
        error = await failure(target.api.ListVehicles(pb.ListVehiclesRequest(fleet_id="hanover")))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (await target.api.ListVehicles(pb.ListVehiclesRequest(fleet_id="hamburg"))).vehicles
    [listed] = (await target.admin.ListFaults(adm.ListFaultsRequest())).faults
    assert listed.hits == 3
    await target.admin.DeleteFault(adm.DeleteFaultRequest(fault_id=fault.id))
    assert (await target.api.ListVehicles(pb.ListVehiclesRequest(fleet_id="hanover"))).vehicles


async def outcomes_with_seed(target: Target, seed: int) -> list[bool]:
    await target.admin.ClearFaults(adm.ClearFaultsRequest())
    await add_fault(
        target, method="GetFleet", probability=0.5, seed=seed, fail=adm.FailCall(code=14, message="x")
    )
    results = []
    for _ in range(30):
        try:
            await target.api.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"))
            results.append(True)
        except grpc.aio.AioRpcError:
            results.append(False)
    return results


async def test_a_fault_with_a_probability_hits_the_same_calls_for_the_same_seed(target: Target) -> None:
    first, again, other = [await outcomes_with_seed(target, s) for s in (7, 7, 8)]
    assert first == again
    assert first != other
    assert 5 < first.count(False) < 25


async def test_latency_delays_the_answer(target: Target) -> None:
    delay = duration_pb2.Duration(nanos=300_000_000)
    await add_fault(target, method="GetFleet", times=1, latency=adm.AddLatency(delay=delay))
    loop = asyncio.get_running_loop()
    began = loop.time()
    await target.api.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"))
    assert loop.time() - began >= 0.3


async def test_a_stream_breaks_after_n_messages(target: Target) -> None:
    await add_fault(
        target,
        method="StreamVehicleEvents",
        break_stream=adm.BreakStream(after_messages=2, code=14, message="gone"),
    )
    stream: Any = target.api.StreamVehicleEvents(pb.StreamRequest(event_id=HAMBURG_EVENTS))
    await next_message(stream)
    await set_soc(target.admin, 10)
    await next_message(stream)
    await set_soc(target.admin, 11)
    with pytest.raises(grpc.aio.AioRpcError) as broken:
        await next_message(stream)
    assert (broken.value.code(), broken.value.details()) == (grpc.StatusCode.UNAVAILABLE, "gone")


async def test_a_stalled_stream_sends_nothing_more_while_others_do(target: Target) -> None:
    await add_fault(
        target, method="StreamVehicleEvents", times=1, stall_stream=adm.StallStream(after_messages=1)
    )
    stalled: Any = target.api.StreamVehicleEvents(pb.StreamRequest(event_id=HAMBURG_EVENTS))
    await next_message(stalled)
    healthy: Any = target.api.StreamVehicleEvents(pb.StreamRequest(event_id=HAMBURG_EVENTS))
    await next_message(healthy)
    for soc in (20, 21, 22):
        await set_soc(target.admin, soc)
    assert [
        (await next_message(healthy)).event.battery_changed.state_of_charge_percent for _ in range(3)
    ] == [20, 21, 22]
    journal = (
        await target.admin.ListJournalEntries(adm.ListJournalEntriesRequest(method="StreamVehicleEvents"))
    ).entries
    assert [e.message_count for e in journal] == [1, 4]
    assert [e.finished for e in journal] == [False, False], "open streams are not finished yet"
    ok_so_far = await target.admin.ListJournalEntries(adm.ListJournalEntriesRequest(code=0))
    assert "StreamVehicleEvents" not in {e.method.rsplit("/", 1)[-1] for e in ok_so_far.entries}
    stalled.cancel()
    healthy.cancel()


async def test_bad_fault_rules_are_refused_with_every_problem(target: Target) -> None:
    rule = adm.Fault(method="", times=-1, probability=0.5, fail=adm.FailCall(code=0))
    error = await failure(target.admin.CreateFault(adm.CreateFaultRequest(fault=rule)))
    [bad] = details_of(rich_status(error), error_details_pb2.BadRequest)
    assert {v.field for v in bad.field_violations} == {
        "fault.method",
        "fault.times",
        "fault.seed",
        "fault.fail.code",
    }
    no_action = await failure(target.admin.CreateFault(adm.CreateFaultRequest(fault=adm.Fault(method="*"))))
    assert no_action.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(no_action).metadata["fields"] == "fault.action"


async def test_the_journal_records_calls_with_redacted_credentials(target: Target) -> None:
    headers = (("x-flow-id", "journal-1"), ("authorization", "Bearer secret-token"))
    await target.api.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"), metadata=headers)
    await failure(
        target.api.GetFleet(pb.GetFleetRequest(fleet_id="nowhere"), metadata=(("x-flow-id", "journal-2"),))
    )
    entries = (
        await target.admin.ListJournalEntries(adm.ListJournalEntriesRequest(method="GetFleet"))
    ).entries
    first, second = entries
    assert first.finished
    assert (first.method, first.version, first.flow_id, first.code) == (
        "/moia.fleet.state.v2.FleetStateService/GetFleet",
        "v2",
        "journal-1",
        0,
    )
    assert first.metadata["authorization"] == "<redacted>"
    assert "secret-token" not in str(first)
    assert dict(first.request) == {"fleet_id": "hamburg"}
    assert (second.code, second.flow_id) == (5, "journal-2")
    assert second.sequence > first.sequence
    assert not first.details
    assert [d.type_url.rsplit(".", 1)[-1] for d in second.details] == [
        "ErrorInfo",
        "RequestInfo",
        "ResourceInfo",
    ]
    as_status = status_pb2.Status(details=second.details)
    [info] = details_of(as_status, error_details_pb2.ErrorInfo)
    [resource] = details_of(as_status, error_details_pb2.ResourceInfo)
    assert (info.reason, info.metadata["flow_id"]) == ("FLEET_NOT_FOUND", "journal-2")
    assert resource.resource_name == "nowhere"
    only = await target.admin.ListJournalEntries(adm.ListJournalEntriesRequest(flow_id="journal-2"))
    assert [e.sequence for e in only.entries] == [second.sequence]
    failed = await target.admin.ListJournalEntries(adm.ListJournalEntriesRequest(code=5))
    assert [e.flow_id for e in failed.entries] == ["journal-2"]
    later = await target.admin.ListJournalEntries(
        adm.ListJournalEntriesRequest(after_sequence=first.sequence)
    )
    assert second.sequence in [e.sequence for e in later.entries]
    assert (await target.admin.ClearJournal(adm.ClearJournalRequest())).deleted >= 2
    assert not (
        await target.admin.ListJournalEntries(adm.ListJournalEntriesRequest(method="GetFleet"))
    ).entries


async def test_the_journal_records_stream_messages_and_the_resume_point(target: Target) -> None:
    position = (await target.api.PollVehicleEvents(pb.PollRequest(event_id=HAMBURG_EVENTS))).message_id
    await set_soc(target.admin, 33)
    stream: Any = target.api.StreamVehicleEvents(
        pb.StreamRequest(event_id=HAMBURG_EVENTS, last_message_id=position)
    )
    sent = await next_message(stream)
    stream.cancel()
    entries = (
        await target.admin.ListJournalEntries(adm.ListJournalEntriesRequest(method="StreamVehicleEvents"))
    ).entries
    [entry] = entries
    assert entry.resumed_from == position
    assert entry.message_count == 1
    assert entry.messages[0]["message_id"] == sent.message_id


async def test_the_clock_is_steered_and_retention_and_tokens_follow_it(target: Target) -> None:
    clock = await target.admin.GetClock(adm.GetClockRequest())
    assert (clock.virtual, clock.now.ToDatetime(tzinfo=UTC)) == (True, START)
    page = await target.api.ListVehicles(pb.ListVehiclesRequest(fleet_id="hamburg", page_size=2))
    later = timestamp_pb2.Timestamp()
    later.FromDatetime(START + timedelta(hours=2))
    await target.admin.SetClock(adm.SetClockRequest(time=later))
    expired = await failure(
        target.api.ListVehicles(pb.ListVehiclesRequest(fleet_id="hamburg", page_token=page.next_page_token))
    )
    assert error_info(expired).reason == "PAGE_TOKEN_EXPIRED"
    old = (await target.api.PollVehicleEvents(pb.PollRequest(event_id=HAMBURG_EVENTS))).message_id
    await set_soc(target.admin, 1)
    advanced = await target.admin.AdvanceClock(
        adm.AdvanceClockRequest(by=duration_pb2.Duration(seconds=25 * 3600))
    )
    assert advanced.now.ToDatetime(tzinfo=UTC) == START + timedelta(hours=27)
    gone = await failure(
        target.api.PollVehicleEvents(pb.PollRequest(event_id=HAMBURG_EVENTS, last_message_id=old))
    )
    assert error_info(gone).reason == "MESSAGE_ID_EXPIRED"
    backwards = await failure(
        target.admin.AdvanceClock(adm.AdvanceClockRequest(by=duration_pb2.Duration(seconds=-1)))
    )
    assert backwards.code() == grpc.StatusCode.INVALID_ARGUMENT
    real = await target.admin.UseRealClock(adm.UseRealClockRequest())
    assert abs(real.now.ToDatetime(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=1)
    assert not (await target.admin.GetClock(adm.GetClockRequest())).virtual


async def test_namespaces_are_isolated_in_state_streams_faults_and_journal(target: Target) -> None:
    a, b = ns("job-a"), ns("job-b")
    await target.admin.DeleteFleet(adm.DeleteFleetRequest(fleet_id="hanover"), metadata=a)
    assert [f.id for f in (await target.api.ListFleets(pb.ListFleetsRequest(), metadata=a)).fleets] == [
        "hamburg"
    ]
    assert len((await target.api.ListFleets(pb.ListFleetsRequest(), metadata=b)).fleets) == 2
    assert len((await target.api.ListFleets(pb.ListFleetsRequest())).fleets) == 2
    seed_request = pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE)
    before_b = (await target.api.GetVehicle(seed_request, metadata=b)).vehicle
    stream_b: Any = target.api.StreamVehicleEvents(pb.StreamRequest(event_id=HAMBURG_EVENTS), metadata=b)
    await next_message(stream_b)
    vehicle = pb.Vehicle(id=SEED_VEHICLE, lock_state=pb.LOCK_STATE_UNLOCKED)
    mask = field_mask_pb2.FieldMask(paths=["lock_state"])
    await target.admin.UpdateVehicle(adm.UpdateVehicleRequest(vehicle=vehicle, update_mask=mask), metadata=a)
    await set_soc(target.admin, 44)  # default namespace
    assert (await target.api.GetVehicle(seed_request, metadata=b)).vehicle == before_b
    assert (
        await target.api.GetVehicle(seed_request, metadata=a)
    ).vehicle.lock_state == pb.LOCK_STATE_UNLOCKED
    assert (await target.api.GetVehicle(seed_request)).vehicle.battery.state_of_charge_percent == 44
    await add_fault(target, method="*", fail=adm.FailCall(code=14, message="only in default"))
    assert (
        await target.api.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"), metadata=a)
    ).fleet.id == "hamburg"
    journal_a = (await target.admin.ListJournalEntries(adm.ListJournalEntriesRequest(), metadata=a)).entries
    assert {e.method.rsplit("/", 1)[-1] for e in journal_a} == {"ListFleets", "GetVehicle", "GetFleet"}
    b_journal = (await target.admin.ListJournalEntries(adm.ListJournalEntriesRequest(), metadata=b)).entries
    assert {e.method.rsplit("/", 1)[-1] for e in b_journal} == {
        "ListFleets",
        "StreamVehicleEvents",
        "GetVehicle",
    }
    polled_b = await target.api.PollVehicleEvents(
        pb.PollRequest(event_id=HAMBURG_EVENTS, last_message_id="0-0"), metadata=b
    )
    assert list(polled_b.events) == []
    stream_b.cancel()


async def test_a_malformed_namespace_is_refused(target: Target) -> None:
    error = await failure(target.api.ListFleets(pb.ListFleetsRequest(), metadata=ns("Not A Name")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    [bad] = details_of(rich_status(error), error_details_pb2.BadRequest)
    assert [v.field for v in bad.field_violations] == ["x-emulator-namespace"]
