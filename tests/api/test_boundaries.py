"""Input at the edges of what protobuf allows, on both backends: each gets INVALID_ARGUMENT with the field
named, never INTERNAL, and leaves the emulator working.

Timestamps outside 0001..9999 or with nanos out of range, Durations beyond ±10,000 years, NaN and
±Infinity in any admin or API message; the clock outside the range it may stand in (and at the ends of
that range, where ids, tokens and retention still work); a refused request journaled as it came; 9 KB of
input echoed into an error, whose trailers must stay small enough for the client to read them.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as adm
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from fleet_emulator.domain.clock import EARLIEST, LATEST
from tests.api.conftest import Target
from tests.rich_errors import DETAILS_KEY, details_of, error_info, rich_status
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE, next_message, set_soc

YEAR_10000 = timestamp_pb2.Timestamp(seconds=253_402_300_800)
BEFORE_YEAR_1 = timestamp_pb2.Timestamp(seconds=-62_135_596_801)
NEGATIVE_NANOS = timestamp_pb2.Timestamp(seconds=1, nanos=-1)
TOO_LONG = duration_pb2.Duration(seconds=315_576_000_001)
MIXED_SIGNS = duration_pb2.Duration(seconds=1, nanos=-5)
HUGE = "x" * 9000
TRAILER_LIMIT = 8192  # gRPC's default limit of a header or trailer block


async def failure(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def bad_fields(error: grpc.aio.AioRpcError) -> list[str]:
    [bad_request] = details_of(rich_status(error), error_details_pb2.BadRequest)
    return [v.field for v in bad_request.field_violations]


async def refused(call: Awaitable[Any], *fields: str) -> grpc.aio.AioRpcError:
    error = await failure(call)
    assert (error.code(), error_info(error).reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID")
    assert bad_fields(error) == list(fields)
    return error


def vehicle_at(location: pb.Location) -> pb.Vehicle:
    return pb.Vehicle(id=SEED_VEHICLE, location=location)


Call = Callable[[Target], Awaitable[Any]]
WELL_KNOWN_TYPES_OUT_OF_RANGE: list[tuple[str, Call, tuple[str, ...]]] = [
    (
        "CreateFleet",
        lambda t: t.admin.CreateFleet(
            adm.CreateFleetRequest(fleet=pb.Fleet(id="kiel", update_time=YEAR_10000))
        ),
        ("fleet.update_time",),
    ),
    (
        "UpdateFleet",
        lambda t: t.admin.UpdateFleet(
            adm.UpdateFleetRequest(
                fleet=pb.Fleet(id="hamburg", update_time=BEFORE_YEAR_1),
                update_mask=field_mask_pb2.FieldMask(paths=["city"]),
            )
        ),
        ("fleet.update_time",),
    ),
    (
        "CreateVehicle",
        lambda t: t.admin.CreateVehicle(
            adm.CreateVehicleRequest(
                vehicle=pb.Vehicle(fleet_id="hamburg", location=pb.Location(recorded_time=NEGATIVE_NANOS))
            )
        ),
        ("vehicle.location.recorded_time",),
    ),
    (
        "admin UpdateVehicle",
        lambda t: t.admin.UpdateVehicle(
            adm.UpdateVehicleRequest(
                vehicle=vehicle_at(pb.Location(recorded_time=YEAR_10000, latitude=math.nan)),
                update_mask=field_mask_pb2.FieldMask(paths=["location"]),
            )
        ),
        ("vehicle.location.latitude", "vehicle.location.recorded_time"),
    ),
    (
        "PublishEvent",
        lambda t: t.admin.PublishEvent(
            adm.PublishEventRequest(
                event=pb.Event(vehicle_id=SEED_VEHICLE, occur_time=YEAR_10000, lock_changed=pb.LockChanged())
            )
        ),
        ("event.occur_time",),
    ),
    (
        "v2 UpdateVehicle",
        lambda t: t.api.UpdateVehicle(
            pb.UpdateVehicleRequest(
                vehicle=pb.Vehicle(id=SEED_VEHICLE, label="x", update_time=BEFORE_YEAR_1),
                update_mask=field_mask_pb2.FieldMask(paths=["label"]),
            )
        ),
        ("vehicle.update_time",),
    ),
    ("SetClock", lambda t: t.admin.SetClock(adm.SetClockRequest(time=NEGATIVE_NANOS)), ("time",)),
    ("AdvanceClock", lambda t: t.admin.AdvanceClock(adm.AdvanceClockRequest(by=TOO_LONG)), ("by",)),
    ("AdvanceClock", lambda t: t.admin.AdvanceClock(adm.AdvanceClockRequest(by=MIXED_SIGNS)), ("by",)),
    (
        "CreateFault",
        lambda t: t.admin.CreateFault(
            adm.CreateFaultRequest(
                fault=adm.Fault(method="*", probability=math.inf, latency=adm.AddLatency(delay=TOO_LONG))
            )
        ),
        ("fault.probability", "fault.latency.delay"),
    ),
    (
        "IssueToken",
        lambda t: t.admin.IssueToken(adm.IssueTokenRequest(subject="me", lifetime=MIXED_SIGNS)),
        ("lifetime",),
    ),
    (
        "UpdatePolicies",
        lambda t: t.admin.UpdatePolicies(
            adm.UpdatePoliciesRequest(policies=adm.Policies(poll_interval=TOO_LONG))
        ),
        ("policies.poll_interval",),
    ),
]


@pytest.mark.parametrize(
    ("rpc", "call", "fields"), WELL_KNOWN_TYPES_OUT_OF_RANGE, ids=lambda v: v if isinstance(v, str) else ""
)
async def test_out_of_range_well_known_types_and_non_finite_numbers_are_named(
    target: Target, rpc: str, call: Call, fields: tuple[str, ...]
) -> None:
    await refused(call(target), *fields)
    assert (await target.api.GetVehicle(pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE))).vehicle.id


@pytest.mark.parametrize(
    "when",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
        EARLIEST - timedelta(seconds=1),
    ],
    ids=["year-1", "9999-12-31", "just-before-the-range"],
)
async def test_the_clock_refuses_times_outside_its_range_and_names_it(target: Target, when: datetime) -> None:
    before = (await target.admin.GetClock(adm.GetClockRequest())).now
    error = await refused(target.admin.SetClock(adm.SetClockRequest(time=timestamp(when))), "time")
    assert "1970-01-02T00:00:00Z to 9000-01-01T00:00:00Z" in str(error.details())
    assert (await target.admin.GetClock(adm.GetClockRequest())).now == before
    past_the_end = duration(LATEST - target.clock.now() + timedelta(seconds=1))
    await refused(target.admin.AdvanceClock(adm.AdvanceClockRequest(by=past_the_end)), "by")


@pytest.mark.parametrize("edge", [EARLIEST, LATEST], ids=["earliest", "latest"])
async def test_at_either_end_of_the_clocks_range_everything_still_works(
    target: Target, edge: datetime
) -> None:
    await target.admin.SetClock(adm.SetClockRequest(time=timestamp(edge)))
    stream = target.api.StreamVehicleEvents(pb.StreamRequest(event_id=HAMBURG_EVENTS))
    start = (await next_message(stream)).message_id
    await set_soc(target.admin, 33)
    assert (await next_message(stream)).event.battery_changed.state_of_charge_percent == 33
    stream.cancel()
    polled = await target.api.PollVehicleEvents(
        pb.PollRequest(event_id=HAMBURG_EVENTS, last_message_id=start)
    )
    assert len(polled.events) == 1
    page = await target.api.ListVehicles(pb.ListVehiclesRequest(fleet_id="hamburg", page_size=2))
    assert page.next_page_token
    await target.api.ListVehicles(
        pb.ListVehiclesRequest(fleet_id="hamburg", page_size=2, page_token=page.next_page_token)
    )
    token = await target.admin.IssueToken(
        adm.IssueTokenRequest(subject="edge", lifetime=duration(timedelta(days=30)))
    )
    assert token.expire_time.ToDatetime(tzinfo=UTC) == edge + timedelta(days=30)
    await target.api.WakeUpVehicle(pb.WakeUpVehicleRequest(vehicle_id=SEED_VEHICLE))
    await target.api.HonkHorn(pb.HonkHornRequest(vehicle_id=SEED_VEHICLE, idempotency_key="edge"))


async def test_a_refused_request_is_journaled_and_the_journal_stays_readable(target: Target) -> None:
    request = pb.UpdateVehicleRequest(
        vehicle=pb.Vehicle(id=SEED_VEHICLE, label="x", update_time=YEAR_10000),
        update_mask=field_mask_pb2.FieldMask(paths=["label"]),
    )
    await refused(
        target.api.UpdateVehicle(request, metadata=(("x-flow-id", "bad-time"),)), "vehicle.update_time"
    )
    [entry] = (
        await target.admin.ListJournalEntries(adm.ListJournalEntriesRequest(flow_id="bad-time"))
    ).entries
    assert (entry.code, entry.reason) == (grpc.StatusCode.INVALID_ARGUMENT.value[0], "FIELD_INVALID")
    assert "253402300800" in entry.request.fields["text_format"].string_value
    assert len((await target.admin.ListJournalEntries(adm.ListJournalEntriesRequest())).entries) >= 1


ECHOING: list[tuple[str, Call]] = [
    ("GetFleet", lambda t: t.api.GetFleet(pb.GetFleetRequest(fleet_id=HUGE))),
    ("DeleteFault", lambda t: t.admin.DeleteFault(adm.DeleteFaultRequest(fault_id=HUGE))),
    (
        "UpdateVehicle paths",
        lambda t: t.api.UpdateVehicle(
            pb.UpdateVehicleRequest(
                vehicle=pb.Vehicle(id=SEED_VEHICLE),
                update_mask=field_mask_pb2.FieldMask(paths=[HUGE, HUGE + "y", "é" * 4000]),
            )
        ),
    ),
    (
        "LoadScenario",
        lambda t: t.admin.LoadScenario(adm.LoadScenarioRequest(yaml=f"fleets:\n  - id: {HUGE}\n")),
    ),
    ("GetVehicle", lambda t: t.api.GetVehicle(pb.GetVehicleRequest(vehicle_id="🚐" * 3000))),
    (
        "StreamVehicleEvents",
        lambda t: next_message(
            t.api.StreamVehicleEvents(pb.StreamRequest(event_id=HAMBURG_EVENTS, last_message_id=HUGE))
        ),
    ),
]


@pytest.mark.parametrize(("rpc", "call"), ECHOING, ids=[rpc for rpc, _ in ECHOING])
async def test_echoed_input_is_cut_so_that_the_error_reaches_the_client(
    target: Target, rpc: str, call: Call
) -> None:
    error = await failure(call(target))
    assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), error
    status = rich_status(error)  # the client got the details: the trailers fit
    assert error_info(error).reason != ""
    trailers: Any = error.trailing_metadata()
    on_the_wire = sum(
        len(k) + (len(base64.b64encode(v)) if k.endswith("-bin") else len(v)) for k, v in trailers
    )
    message = sum(1 if " " <= c <= "~" and c != "%" else 3 * len(c.encode()) for c in str(error.details()))
    assert on_the_wire + message < TRAILER_LIMIT * 3 // 4, (on_the_wire, message)
    assert len(status.SerializeToString()) <= 3072
    assert any(k == DETAILS_KEY for k, _ in trailers)


def timestamp(when: datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    return stamp


def duration(span: timedelta) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromTimedelta(span)
    return value
