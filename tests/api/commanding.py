"""What the tests of vehicle commands and updates share: putting a vehicle to sleep or offline, reading its
connectivity, moving the clock through the admin service, and the errors and events they check."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from google.rpc import error_details_pb2

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as adm
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from tests.rich_errors import details_of, error_info, rich_status
from tests.steering import HAMBURG_EVENTS

ASLEEP = pb.CONNECTIVITY_STATE_ASLEEP
ONLINE = pb.CONNECTIVITY_STATE_ONLINE
OFFLINE = pb.CONNECTIVITY_STATE_OFFLINE
OTHER_VEHICLE = "3245cadd-a80c-4524-a5d8-6507479b7921"  # label 430 in the demo's hamburg fleet
UNKNOWN_VEHICLE = "00000000-0000-4000-8000-000000000000"


def headers(namespace: str = "", flow_id: str = "") -> tuple[tuple[str, str], ...]:
    found = (("x-emulator-namespace", namespace),) if namespace else ()
    return (*found, ("x-flow-id", flow_id)) if flow_id else found


async def failure(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def set_connectivity(admin: Any, vehicle_id: str, state: int, namespace: str = "") -> None:
    """Put a vehicle in a connectivity state through the admin service, as a test of a client would."""
    request = adm.UpdateVehicleRequest(
        vehicle=pb.Vehicle(id=vehicle_id, connectivity=state),  # type: ignore[arg-type]
        update_mask=field_mask_pb2.FieldMask(paths=["connectivity"]),
    )
    await admin.UpdateVehicle(request, metadata=headers(namespace))


async def connectivity(api: Any, vehicle_id: str, namespace: str = "") -> int:
    request = pb.GetVehicleRequest(vehicle_id=vehicle_id)
    state: int = (await api.GetVehicle(request, metadata=headers(namespace))).vehicle.connectivity
    return state


async def advance(admin: Any, by: timedelta) -> None:
    """Move the emulator's clock through the admin service, which settles the wake-ups due by then."""
    duration = duration_pb2.Duration()
    duration.FromTimedelta(by)
    await admin.AdvanceClock(adm.AdvanceClockRequest(by=duration))


async def position(api: Any, namespace: str = "") -> str:
    """The current message id of the hamburg fleet's event stream."""
    response = await api.PollVehicleEvents(
        pb.PollRequest(event_id=HAMBURG_EVENTS), metadata=headers(namespace)
    )
    message_id: str = response.message_id
    return message_id


async def events_since(api: Any, message_id: str, namespace: str = "") -> list[Any]:
    """The hamburg fleet's events after ``message_id`` (one poll: tests make fewer than 100)."""
    request = pb.PollRequest(event_id=HAMBURG_EVENTS, last_message_id=message_id)
    return list((await api.PollVehicleEvents(request, metadata=headers(namespace))).events)


def precondition_of(error: grpc.aio.AioRpcError) -> error_details_pb2.PreconditionFailure.Violation:
    [failure_detail] = details_of(rich_status(error), error_details_pb2.PreconditionFailure)
    [violation] = failure_detail.violations
    return violation


def bad_fields(error: grpc.aio.AioRpcError) -> list[str]:
    [bad] = details_of(rich_status(error), error_details_pb2.BadRequest)
    return [v.field for v in bad.field_violations]


def reason(error: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str]:
    return error.code(), error_info(error).reason
