"""UpdateVehicle with field masks and etags (AIP-134, AIP-154, seed 003) through gRPC, on both backends.

No etag applies the change, the etag of a read applies it as read (``W/"…"``) or as the part within the
quotes, a stale one is ABORTED (``ETAG_MISMATCH``) and changes nothing; masks name what may change in the
version's own names; two updates based on one etag never both apply.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import grpc
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2

from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2 as v1
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2_grpc as v1_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from tests.api.commanding import UNKNOWN_VEHICLE, bad_fields, events_since, failure, headers, position, reason
from tests.api.conftest import Target
from tests.rich_errors import details_of, error_info, rich_status
from tests.steering import SEED_VEHICLE


async def current(target: Target) -> pb.Vehicle:
    vehicle: pb.Vehicle = (await target.api.GetVehicle(pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE))).vehicle
    return vehicle


def update(paths: list[str], etag: str = "", vehicle_id: str = SEED_VEHICLE, **fields: Any) -> Any:
    return pb.UpdateVehicleRequest(
        vehicle=pb.Vehicle(id=vehicle_id, etag=etag, **fields),
        update_mask=field_mask_pb2.FieldMask(paths=paths),
    )


async def test_without_an_etag_the_change_applies_with_events_and_a_new_etag(target: Target) -> None:
    before = await current(target)
    since = await position(target.api)
    request = update(
        ["label", "operational_status", "properties.seats"],
        label="L-1",
        operational_status=pb.OPERATIONAL_STATUS_MAINTENANCE,
        properties=pb.VehicleProperties(seats=4, make="ignored: not in the mask"),
    )
    updated = (await target.api.UpdateVehicle(request, metadata=headers(flow_id="edit-1"))).vehicle
    assert (updated.label, updated.operational_status, updated.properties.seats) == (
        "L-1",
        pb.OPERATIONAL_STATUS_MAINTENANCE,
        4,
    )
    assert updated.properties.make == before.properties.make
    assert updated.etag != before.etag
    assert await current(target) == updated
    [event] = await events_since(target.api, since)  # the label and the description are no state: no event
    assert (event.operational_status_changed.current, event.flow_id) == (
        pb.OPERATIONAL_STATUS_MAINTENANCE,
        "edit-1",
    )


async def test_the_etag_of_a_read_applies_as_read_and_as_the_part_within_the_quotes(target: Target) -> None:
    read = await current(target)
    assert read.etag.startswith('W/"') and read.etag.endswith('"')
    first = (await target.api.UpdateVehicle(update(["label"], read.etag, label="A"))).vehicle
    inner = first.etag.removeprefix('W/"').removesuffix('"')
    second = (await target.api.UpdateVehicle(update(["label"], inner, label="B"))).vehicle
    assert (await current(target)) == second
    assert second.label == "B"


async def test_a_stale_etag_is_aborted_and_changes_nothing(target: Target) -> None:
    stale = (await current(target)).etag
    await target.api.UpdateVehicle(update(["label"], label="changed meanwhile"))
    before = await current(target)
    error = await failure(target.api.UpdateVehicle(update(["label"], stale, label="lost update")))
    assert reason(error) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    [resource] = details_of(rich_status(error), error_details_pb2.ResourceInfo)
    assert (resource.resource_type, resource.resource_name) == ("vehicle", SEED_VEHICLE)
    assert error_info(error).metadata["vehicle_id"] == SEED_VEHICLE
    assert await current(target) == before


async def test_of_two_updates_based_on_one_etag_one_applies(target: Target) -> None:
    etag = (await current(target)).etag
    outcomes = await asyncio.gather(
        *(target.api.UpdateVehicle(update(["label"], etag, label=f"racer-{n}")) for n in range(2)),
        return_exceptions=True,
    )
    failed = [o for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert [f.code() for f in failed] == [grpc.StatusCode.ABORTED]
    [won] = [o.vehicle for o in outcomes if not isinstance(o, BaseException)]
    assert await current(target) == won


async def test_masks_name_only_what_update_vehicle_changes(target: Target) -> None:
    for paths in (
        [],
        ["connectivity"],
        ["etag"],
        ["id"],
        ["location.latitude"],
        ["configuration.seats"],  # v1's name, not v2's
        ["properties.nope"],
        ["*"],
    ):
        error = await failure(target.api.UpdateVehicle(update(paths)))
        assert reason(error) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID"), paths
        assert bad_fields(error) == ["update_mask"], paths


async def test_values_are_checked_and_every_bad_field_named(target: Target) -> None:
    request = update(
        ["label", "operational_status", "properties"],
        label=" ",
        properties=pb.VehicleProperties(seats=-1, battery_capacity_kwh=1e9, model_year=1200),
    )
    error = await failure(target.api.UpdateVehicle(request))
    assert reason(error) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID")
    assert bad_fields(error) == [
        "vehicle.label",
        "vehicle.operational_status",
        "vehicle.properties.model_year",
        "vehicle.properties.seats",
        "vehicle.properties.battery_capacity_kwh",
    ]


async def test_numbers_that_are_no_numbers_are_refused_before_anything_else(target: Target) -> None:
    for bad in (math.nan, math.inf, -math.inf):
        request = update(
            ["label", "properties"], label=" ", properties=pb.VehicleProperties(battery_capacity_kwh=bad)
        )
        error = await failure(target.api.UpdateVehicle(request))
        assert reason(error) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID")
        assert bad_fields(error) == ["vehicle.properties.battery_capacity_kwh"], bad


async def test_the_vehicle_must_be_named_and_exist(target: Target) -> None:
    unnamed = await failure(target.api.UpdateVehicle(update(["label"], vehicle_id="", label="x")))
    assert bad_fields(unnamed) == ["vehicle.id"]
    missing = await failure(
        target.api.UpdateVehicle(update(["label"], vehicle_id=UNKNOWN_VEHICLE, label="x"))
    )
    assert reason(missing) == (grpc.StatusCode.NOT_FOUND, "VEHICLE_NOT_FOUND")


async def test_v1_names_the_description_configuration(target: Target) -> None:
    api = v1_grpc.FleetStateServiceStub(target.channel)
    request = v1.UpdateVehicleRequest(
        vehicle=v1.Vehicle(id=SEED_VEHICLE, configuration=v1.VehicleConfiguration(seats=3, make="MOIA")),
        update_mask=field_mask_pb2.FieldMask(paths=["configuration"]),
    )
    updated = (await api.UpdateVehicle(request)).vehicle
    assert (updated.configuration.seats, updated.configuration.make, updated.configuration.model) == (
        3,
        "MOIA",
        "",
    )
    assert (await current(target)).properties.seats == 3
