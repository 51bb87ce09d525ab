"""A first round trip through the v1beta4 API with the demo scenario."""

from __future__ import annotations

import grpc

from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2 as pb
from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2_grpc as pb_grpc


async def test_seed_002_paging_call_returns_two_vehicles_and_a_token(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.FleetStateServiceStub(channel)
    response = await stub.ListVehicles(pb.ListVehiclesRequest(fleet_id="hamburg", page_size=2))
    assert len(response.vehicles) == 2
    assert response.next_page_token
