"""gRPC round trips of every RPC in every version against the in-process emulator with the demo scenario."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from fleet_emulator.api.versions import VERSIONS, ApiVersion
from fleet_emulator.domain.reasons import DOMAIN
from tests.rich_errors import details_of, error_info, rich_status

SEED_VEHICLE = "94d36e21-ca69-4a5b-b2b7-8068122e7362"
ALL = pytest.mark.parametrize("version", VERSIONS, ids=[v.name for v in VERSIONS])


def stub(version: ApiVersion, channel: grpc.aio.Channel) -> Any:
    return version.grpc_module.FleetStateServiceStub(channel)


async def failure(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


@ALL
async def test_list_and_get_fleets(version: ApiVersion, channel: grpc.aio.Channel) -> None:
    pb = version.servicer.adapter.pb
    fleets = (await stub(version, channel).ListFleets(pb.ListFleetsRequest())).fleets
    assert [f.id for f in fleets] == ["hamburg", "hanover"]
    hamburg = (await stub(version, channel).GetFleet(pb.GetFleetRequest(fleet_id="hamburg"))).fleet
    assert hamburg == fleets[0]
    assert hamburg.vehicle_count == 27
    assert hamburg.city == "Hamburg"


@ALL
async def test_list_vehicles_pages_through_the_fleet(version: ApiVersion, channel: grpc.aio.Channel) -> None:
    pb = version.servicer.adapter.pb
    ids: list[str] = []
    token = ""
    while True:
        request = pb.ListVehiclesRequest(fleet_id="hamburg", page_size=10, page_token=token)
        response = await stub(version, channel).ListVehicles(request)
        ids += [v.id for v in response.vehicles]
        token = response.next_page_token
        if not token:
            break
    assert len(ids) == len(set(ids)) == 27
    assert ids == sorted(ids)
    assert SEED_VEHICLE in ids


@ALL
async def test_get_vehicle_returns_a_realistic_vehicle(
    version: ApiVersion, channel: grpc.aio.Channel
) -> None:
    pb = version.servicer.adapter.pb
    vehicle = (await stub(version, channel).GetVehicle(pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE))).vehicle
    spec = getattr(vehicle, version.servicer.adapter.spec_field)
    assert (vehicle.label, vehicle.fleet_id) == ("429", "hamburg")
    assert (spec.make, spec.model, spec.seats) == ("Volkswagen", "ID. Buzz AD", 6)
    assert pb.AutomationLevel.Name(spec.automation_level) == "AUTOMATION_LEVEL_SAE_4"
    assert pb.ConnectivityState.Name(vehicle.connectivity) == "CONNECTIVITY_STATE_ONLINE"
    assert pb.OperationalStatus.Name(vehicle.operational_status) == "OPERATIONAL_STATUS_ON_MISSION"
    assert 53 < vehicle.location.latitude < 54 and 9 < vehicle.location.longitude < 11
    assert vehicle.location.speed_kmh > 0
    assert 0 < vehicle.battery.state_of_charge_percent <= 100
    assert vehicle.location.recorded_time.seconds > 0 and vehicle.update_time.seconds > 0
    assert vehicle.etag and len(vehicle.doors) == 4


@ALL
async def test_get_vehicle_accepts_an_uppercase_uuid(version: ApiVersion, channel: grpc.aio.Channel) -> None:
    pb = version.servicer.adapter.pb
    request = pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE.upper())
    assert (await stub(version, channel).GetVehicle(request)).vehicle.id == SEED_VEHICLE


@ALL
async def test_unknown_vehicle_is_not_found_with_resource_info(
    version: ApiVersion, channel: grpc.aio.Channel
) -> None:
    pb = version.servicer.adapter.pb
    missing = "00000000-0000-4000-8000-000000000000"
    error = await failure(stub(version, channel).GetVehicle(pb.GetVehicleRequest(vehicle_id=missing)))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    info = error_info(error)
    assert (info.reason, info.domain, info.metadata["vehicle_id"]) == ("VEHICLE_NOT_FOUND", DOMAIN, missing)
    [resource] = details_of(rich_status(error), error_details_pb2.ResourceInfo)
    assert (resource.resource_type, resource.resource_name) == ("vehicle", missing)


@ALL
async def test_unknown_fleet_is_not_found(version: ApiVersion, channel: grpc.aio.Channel) -> None:
    pb = version.servicer.adapter.pb
    for call in (
        stub(version, channel).GetFleet(pb.GetFleetRequest(fleet_id="atlantis")),
        stub(version, channel).ListVehicles(pb.ListVehiclesRequest(fleet_id="atlantis")),
    ):
        error = await failure(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error_info(error).reason == "FLEET_NOT_FOUND"
        [resource] = details_of(rich_status(error), error_details_pb2.ResourceInfo)
        assert (resource.resource_type, resource.resource_name) == ("fleet", "atlantis")


@ALL
async def test_invalid_request_lists_every_field_in_bad_request(
    version: ApiVersion, channel: grpc.aio.Channel
) -> None:
    pb = version.servicer.adapter.pb
    error = await failure(stub(version, channel).ListVehicles(pb.ListVehiclesRequest(page_size=-5)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rich_status(error)
    assert (status.code, status.message) == (error.code().value[0], error.details())
    [bad] = details_of(status, error_details_pb2.BadRequest)
    assert {v.field for v in bad.field_violations} == {"fleet_id", "page_size"}
    assert error_info(error).reason == "FIELD_INVALID"


@ALL
async def test_page_token_of_another_fleet_is_invalid(version: ApiVersion, channel: grpc.aio.Channel) -> None:
    pb = version.servicer.adapter.pb
    first = await stub(version, channel).ListVehicles(pb.ListVehiclesRequest(fleet_id="hamburg", page_size=2))
    request = pb.ListVehiclesRequest(fleet_id="hanover", page_size=2, page_token=first.next_page_token)
    error = await failure(stub(version, channel).ListVehicles(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "PAGE_TOKEN_MISMATCH"
    [bad] = details_of(rich_status(error), error_details_pb2.BadRequest)
    assert [v.field for v in bad.field_violations] == ["page_token"]


@ALL
async def test_garbled_page_token_is_not_found_with_error_info(
    version: ApiVersion, channel: grpc.aio.Channel
) -> None:
    pb = version.servicer.adapter.pb
    request = pb.ListVehiclesRequest(fleet_id="hamburg", page_token="not-a-token")
    error = await failure(stub(version, channel).ListVehicles(request))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(error).reason == "PAGE_TOKEN_NOT_FOUND"
    assert not details_of(rich_status(error), error_details_pb2.ResourceInfo)


@ALL
async def test_flow_id_is_generated_or_taken_from_the_client(
    version: ApiVersion, channel: grpc.aio.Channel
) -> None:
    pb = version.servicer.adapter.pb
    call = stub(version, channel).GetFleet(pb.GetFleetRequest(fleet_id="hamburg"))
    generated = dict(await call.initial_metadata())["x-flow-id"]
    assert len(generated) == 36
    call = stub(version, channel).GetFleet(
        pb.GetFleetRequest(fleet_id="nowhere"), metadata=(("x-flow-id", "my-flow-42"),)
    )
    assert dict(await call.initial_metadata())["x-flow-id"] == "my-flow-42"
    error = await failure(call)
    assert error_info(error).metadata["flow_id"] == "my-flow-42"
    [request_info] = details_of(rich_status(error), error_details_pb2.RequestInfo)
    assert request_info.request_id == "my-flow-42"


async def test_an_oversized_request_is_invalid_with_details(channel: grpc.aio.Channel) -> None:
    pb = VERSIONS[-1].servicer.adapter.pb
    call = stub(VERSIONS[-1], channel).GetVehicle(pb.GetVehicleRequest(vehicle_id="a" * 5_000_000))
    error = await failure(call)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(error).reason == "REQUEST_TOO_LARGE"
    [bad] = details_of(rich_status(error), error_details_pb2.BadRequest)
    assert [v.field for v in bad.field_violations] == ["request"]


@ALL
async def test_only_the_deprecated_version_names_its_successor(
    version: ApiVersion, channel: grpc.aio.Channel
) -> None:
    pb = version.servicer.adapter.pb
    ok = stub(version, channel).GetFleet(pb.GetFleetRequest(fleet_id="hamburg"))
    failed = stub(version, channel).GetFleet(pb.GetFleetRequest(fleet_id="nowhere"))
    for call in (ok, failed):
        headers = dict(await call.initial_metadata())
        if version.name == "v1beta4":
            assert headers["deprecation"] == "true"
            assert headers["link"] == '<moia.fleet.state.v2>; rel="successor-version"'
        else:
            assert "deprecation" not in headers
            assert "link" not in headers
    await ok
    await failure(failed)
