"""The RPC methods of ``FleetStateService``, written once and mixed into each version's generated servicer.

Each method converts the request's fields, calls the domain ``FleetService`` and converts the result with
the version's ``VersionAdapter``; errors are mapped by the call-scope interceptor.
"""

from __future__ import annotations

from typing import Any, ClassVar

from fleet_emulator.api.convert import VersionAdapter
from fleet_emulator.domain.service import FleetService

Context = Any  # grpc.aio.ServicerContext; unused by the methods, which raise domain errors instead


class FleetStateApi:
    adapter: ClassVar[VersionAdapter]

    def __init__(self, service: FleetService) -> None:
        self.service = service

    async def ListFleets(self, request: Any, context: Context) -> Any:
        page = await self.service.list_fleets(request.page_size, request.page_token)
        fleets = [self.adapter.fleet(v) for v in page.items]
        return self.adapter.pb.ListFleetsResponse(fleets=fleets, next_page_token=page.next_page_token)

    async def GetFleet(self, request: Any, context: Context) -> Any:
        view = await self.service.get_fleet(request.fleet_id)
        return self.adapter.pb.GetFleetResponse(fleet=self.adapter.fleet(view))

    async def ListVehicles(self, request: Any, context: Context) -> Any:
        page = await self.service.list_vehicles(request.fleet_id, request.page_size, request.page_token)
        vehicles = [self.adapter.vehicle(v) for v in page.items]
        return self.adapter.pb.ListVehiclesResponse(vehicles=vehicles, next_page_token=page.next_page_token)

    async def GetVehicle(self, request: Any, context: Context) -> Any:
        vehicle = await self.service.get_vehicle(request.vehicle_id)
        return self.adapter.pb.GetVehicleResponse(vehicle=self.adapter.vehicle(vehicle))
