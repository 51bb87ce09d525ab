"""Version parity: the same scenario read through v1beta4, v1 and v2 gives the same answers.

The only difference allowed is the data difference between the packages: v2 calls the vehicle's static
description ``properties`` (``VehicleProperties``) where v1beta4 and v1 call it ``configuration``.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from fleet_emulator.api.versions import VERSIONS, ApiVersion


async def everything_through(version: ApiVersion, channel: grpc.aio.Channel) -> dict[str, Any]:
    """Every fleet and vehicle as one version shows them, in a version-neutral dict form."""
    pb = version.servicer.adapter.pb
    stub = version.grpc_module.FleetStateServiceStub(channel)

    def plain(message: Any) -> dict[str, Any]:
        data = MessageToDict(message, preserving_proto_field_name=True)
        if version.servicer.adapter.spec_field in data:
            data["static_description"] = data.pop(version.servicer.adapter.spec_field)
        return data

    fleets = (await stub.ListFleets(pb.ListFleetsRequest())).fleets
    seen: dict[str, Any] = {"fleets": [plain(f) for f in fleets], "vehicles": {}, "pages": {}}
    for fleet in fleets:
        assert plain((await stub.GetFleet(pb.GetFleetRequest(fleet_id=fleet.id))).fleet) == plain(fleet)
        first = await stub.ListVehicles(pb.ListVehiclesRequest(fleet_id=fleet.id, page_size=3))
        seen["pages"][fleet.id] = [v.id for v in first.vehicles]
        listed = (await stub.ListVehicles(pb.ListVehiclesRequest(fleet_id=fleet.id, page_size=1000))).vehicles
        for vehicle in listed:
            got = (await stub.GetVehicle(pb.GetVehicleRequest(vehicle_id=vehicle.id))).vehicle
            assert got == vehicle
            seen["vehicles"][vehicle.id] = plain(vehicle)
    return seen


async def test_all_versions_give_the_same_answers(channel: grpc.aio.Channel) -> None:
    views = {v.name: await everything_through(v, channel) for v in VERSIONS}
    reference = views["v1"]
    assert len(reference["vehicles"]) == 35
    assert all("static_description" in v for v in reference["vehicles"].values())
    for name, view in views.items():
        assert view == reference, f"{name} differs from v1"
