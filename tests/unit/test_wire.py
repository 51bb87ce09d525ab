"""Responses joined from serialized parts are byte for byte what protobuf makes of the same messages."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from google.protobuf import wrappers_pb2

from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from fleet_emulator.api.versions import V1Servicer, V2Servicer
from fleet_emulator.api.wire import assemble, varint
from fleet_emulator.backends.event_bytes import encoded
from fleet_emulator.domain.events import LogEntry
from fleet_emulator.domain.message_ids import ZERO, MessageId
from fleet_emulator.domain.scenario import load_scenario
from tests.contract.test_event_log import event as event_of_log

ADAPTER = V2Servicer.adapter
SCENARIO = load_scenario(None, datetime(2026, 11, 22, 8, 0, tzinfo=UTC))


@pytest.mark.parametrize("value", [1, 127, 128, 300, 16_383, 16_384, 2**31, 2**64 - 1])
def test_varint_is_protobufs(value: int) -> None:
    after_tag = wrappers_pb2.UInt64Value(value=value).SerializeToString()[1:]
    assert varint(value) == after_tag


@pytest.mark.parametrize("count", [0, 1, 50])
@pytest.mark.parametrize("token", ["", "next-page-token"])
def test_a_page_of_vehicles(count: int, token: str) -> None:
    vehicles = list(SCENARIO.vehicles)[:count]
    built = v2.ListVehiclesResponse(vehicles=[ADAPTER.vehicle(v) for v in vehicles], next_page_token=token)
    joined = assemble(
        v2.ListVehiclesResponse, vehicles=[ADAPTER.vehicle_bytes(v) for v in vehicles], next_page_token=token
    )
    assert joined.data == built.SerializeToString()
    assert joined.message == built


def test_one_vehicle_and_an_empty_one() -> None:
    vehicle = SCENARIO.vehicles[0]
    built = v2.GetVehicleResponse(vehicle=ADAPTER.vehicle(vehicle))
    assert (
        assemble(v2.GetVehicleResponse, vehicle=ADAPTER.vehicle_bytes(vehicle)).data
        == built.SerializeToString()
    )
    empty = v2.GetVehicleResponse(vehicle=v2.Vehicle())
    assert assemble(v2.GetVehicleResponse, vehicle=b"").data == empty.SerializeToString()


def test_stream_messages_with_and_without_an_event() -> None:
    event = v2.Event(id="e-1", vehicle_id="v-1", fleet_id="hamburg", flow_id="f-1")
    event.lock_changed.lock_state = v2.LOCK_STATE_UNLOCKED
    with_event = v2.StreamResponse(event=event, message_id="1764662400000-3")
    joined = assemble(v2.StreamResponse, event=event.SerializeToString(), message_id="1764662400000-3")
    assert joined.data == with_event.SerializeToString()
    position = assemble(v2.StreamResponse, message_id="1764662400000-0")
    assert position.message == v2.StreamResponse(message_id="1764662400000-0")
    assert not position.message.HasField("event")


def test_a_cached_vehicle_follows_its_etag() -> None:
    vehicle = SCENARIO.vehicles[0]
    first = ADAPTER.vehicle_bytes(vehicle)
    assert ADAPTER.vehicle_bytes(vehicle) is first, "serialized once per content"
    changed = dataclasses.replace(vehicle, label=vehicle.label + "-changed", etag='W/"other"')
    assert v2.Vehicle.FromString(ADAPTER.vehicle_bytes(changed)).label == vehicle.label + "-changed"


def test_a_stream_message_is_serialized_once_for_all_subscribers() -> None:
    event = dataclasses.replace(event_of_log(7), id="e-once")
    entry = LogEntry(MessageId(1764662400000, 7), ZERO, event)
    first = ADAPTER.stream_message(entry)
    assert ADAPTER.stream_message(entry) is first
    assert first.message == v2.StreamResponse(event=ADAPTER.event(event), message_id="1764662400000-7")


def test_v2_sends_a_stored_event_as_it_is_stored_and_other_versions_convert_it() -> None:
    event = dataclasses.replace(event_of_log(8), id="e-stored")
    stored = encoded(event)
    assert stored == ADAPTER.event(dataclasses.replace(event, id="e-stored")).SerializeToString()
    plain = LogEntry(MessageId(1764662400000, 18), ZERO, event, stored)
    expected = v2.StreamResponse(event=v2.Event.FromString(stored), message_id="1764662400000-18")
    assert ADAPTER.stream_message(plain).data == expected.SerializeToString(), "byte for byte protobuf's"
    marked = stored + b"\xa0\x06\x01"  # and field 100 = 1, which no conversion makes
    entry = LogEntry(MessageId(1764662400000, 8), ZERO, event, marked)
    sent = v2.StreamResponse.FromString(ADAPTER.stream_message(entry).data)
    assert sent.event.SerializeToString() == marked, "v2 sends the stored bytes, unknown field and all"
    assert ADAPTER.entry_bytes(entry) == marked
    old = V1Servicer.adapter.stream_message(entry)
    assert old.message.event == V1Servicer.adapter.event(event), "v1 converts the event"
