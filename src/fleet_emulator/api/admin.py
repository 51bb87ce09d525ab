"""The admin service (``emulator.admin.v1.AdminService``): how tests steer the emulator.

Vehicles and events travel in their ``moia.fleet.state.v2`` form; the methods convert them with the v2
adapter and call the domain, like the emulated API does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as pb
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2_grpc as pb_grpc
from fleet_emulator.api.versions import V2Servicer
from fleet_emulator.domain.emulation import Emulation
from fleet_emulator.domain.scenario import Scenario

ADAPTER = V2Servicer.adapter
Context = Any


class AdminServicer(pb_grpc.AdminServiceServicer):
    def __init__(self, emulation: Emulation, reset: Callable[[], Awaitable[Scenario]]) -> None:
        self.emulation = emulation
        self.reset = reset

    async def ResetEmulator(
        self, request: pb.ResetEmulatorRequest, context: Context
    ) -> pb.ResetEmulatorResponse:
        scenario = await self.reset()
        return pb.ResetEmulatorResponse(
            fleet_count=len(scenario.fleets), vehicle_count=len(scenario.vehicles)
        )

    async def UpdateVehicle(
        self, request: pb.UpdateVehicleRequest, context: Context
    ) -> pb.UpdateVehicleResponse:
        paths = [ADAPTER.domain_path(p) for p in request.update_mask.paths]
        source = ADAPTER.vehicle_from(request.vehicle)
        vehicle, events = await self.emulation.updates.update_paths(request.vehicle.id, source, paths)
        return pb.UpdateVehicleResponse(
            vehicle=ADAPTER.vehicle(vehicle), events=[ADAPTER.event(e) for e in events]
        )

    async def PublishEvent(
        self, request: pb.PublishEventRequest, context: Context
    ) -> pb.PublishEventResponse:
        message_id, event = await self.emulation.updates.publish(ADAPTER.event_from(request.event))
        return pb.PublishEventResponse(message_id=str(message_id), event=ADAPTER.event(event))
