"""Durable event streams and polling (API.md section 5) through gRPC, on both backends."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from tests.api.conftest import Target
from tests.rich_errors import details_of, error_info, rich_status
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE, set_soc

VEHICLE = SEED_VEHICLE
STREAM = HAMBURG_EVENTS


async def read(stream: Any, n: int) -> list[pb.StreamResponse]:
    """The next ``n`` messages of a server stream (failing the test if one takes over 5 s)."""
    return [await asyncio.wait_for(stream.read(), 5) for _ in range(n)]


async def test_fleets_name_their_stream(target: Target) -> None:
    fleet = (await target.api.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"))).fleet
    assert fleet.vehicle_events_id == STREAM


async def test_first_message_is_the_position_then_live_events_with_the_flow_id(target: Target) -> None:
    await set_soc(target.admin, 50)
    stream = target.api.StreamVehicleEvents(pb.StreamRequest(event_id=STREAM))
    [first] = await read(stream, 1)
    assert not first.HasField("event")
    assert first.message_id.endswith("-0")
    await set_soc(target.admin, 40, flow_id="flow-soc-40")
    [second] = await read(stream, 1)
    assert second.event.battery_changed.state_of_charge_percent == 40
    assert second.event.vehicle_id == VEHICLE
    assert second.event.flow_id == "flow-soc-40"
    assert second.message_id > first.message_id
    stream.cancel()


async def test_resume_replays_exactly_what_was_missed_while_publishing(target: Target) -> None:
    stream = target.api.StreamVehicleEvents(pb.StreamRequest(event_id=STREAM))
    [start] = await read(stream, 1)
    stream.cancel()
    for soc in range(1, 31):
        await target.clock.advance(timedelta(milliseconds=1))
        await set_soc(target.admin, soc)
    resumed = target.api.StreamVehicleEvents(
        pb.StreamRequest(event_id=STREAM, last_message_id=start.message_id)
    )
    publishing = asyncio.create_task(_publish_more(target, range(31, 61)))
    got = await read(resumed, 60)
    await publishing
    resumed.cancel()
    socs = [m.event.battery_changed.state_of_charge_percent for m in got]
    assert socs == list(range(1, 61))
    ids = [m.message_id for m in got]
    assert len(set(ids)) == 60


async def _publish_more(target: Target, socs: range) -> None:
    for soc in socs:
        await set_soc(target.admin, soc)


async def test_a_message_id_older_than_retention_is_expired(target: Target) -> None:
    old = (await target.api.PollVehicleEvents(pb.PollRequest(event_id=STREAM))).message_id
    await set_soc(target.admin, 10)
    await target.clock.advance(timedelta(hours=25))
    await set_soc(target.admin, 20)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(target.api.StreamVehicleEvents(pb.StreamRequest(event_id=STREAM, last_message_id=old)), 1)
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    info = error_info(caught.value)
    assert info.reason == "MESSAGE_ID_EXPIRED"
    newest = (await target.api.PollVehicleEvents(pb.PollRequest(event_id=STREAM))).message_id
    assert info.metadata["oldest_retained_message_id"] == newest


async def test_a_message_id_newer_than_anything_written_is_unknown(target: Target) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await target.api.PollVehicleEvents(
            pb.PollRequest(event_id=STREAM, last_message_id="99999999999999-0")
        )
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert error_info(caught.value).reason == "MESSAGE_ID_UNKNOWN"


@pytest.mark.parametrize("bad", ["abc", "12", "1-2-3", "-1-0", "1-99999999999999999999999"])
async def test_a_malformed_message_id_is_invalid(target: Target, bad: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(target.api.StreamVehicleEvents(pb.StreamRequest(event_id=STREAM, last_message_id=bad)), 1)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [bad_request] = details_of(rich_status(caught.value), error_details_pb2.BadRequest)
    assert [v.field for v in bad_request.field_violations] == ["last_message_id"]


async def test_an_unknown_stream_is_not_found(target: Target) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await read(
            target.api.StreamVehicleEvents(pb.StreamRequest(event_id="fleets/atlantis/vehicle-events")), 1
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(caught.value).reason == "EVENT_STREAM_NOT_FOUND"
    [resource] = details_of(rich_status(caught.value), error_details_pb2.ResourceInfo)
    assert resource.resource_name == "fleets/atlantis/vehicle-events"


async def test_polling_follows_the_same_ids(target: Target) -> None:
    start = await target.api.PollVehicleEvents(pb.PollRequest(event_id=STREAM))
    assert list(start.events) == []
    again = await target.api.PollVehicleEvents(
        pb.PollRequest(event_id=STREAM, last_message_id=start.message_id)
    )
    assert (list(again.events), again.message_id) == ([], start.message_id)
    for step in range(1, 151):
        await set_soc(target.admin, step / 2)  # 150 distinct states of charge within 0..100
    first = await target.api.PollVehicleEvents(
        pb.PollRequest(event_id=STREAM, last_message_id=start.message_id)
    )
    assert len(first.events) == 100
    second = await target.api.PollVehicleEvents(
        pb.PollRequest(event_id=STREAM, last_message_id=first.message_id)
    )
    socs = [e.battery_changed.state_of_charge_percent for e in [*first.events, *second.events]]
    assert socs == [step / 2 for step in range(1, 151)]


async def test_admin_publishes_an_arbitrary_event(target: Target) -> None:
    start = (await target.api.PollVehicleEvents(pb.PollRequest(event_id=STREAM))).message_id
    change = pb.MissionProgressed(mission_id="m-1", stage=pb.MISSION_STAGE_ARRIVED_AT_PICKUP)
    published = await target.admin.PublishEvent(
        admin_pb2.PublishEventRequest(event=pb.Event(vehicle_id=VEHICLE, mission_progressed=change))
    )
    polled = await target.api.PollVehicleEvents(pb.PollRequest(event_id=STREAM, last_message_id=start))
    assert polled.message_id == published.message_id
    [event] = polled.events
    assert event == published.event
    assert event.mission_progressed == change
    assert event.fleet_id == "hamburg" and event.id and event.flow_id
