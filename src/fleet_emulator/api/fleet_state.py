"""The RPC methods of ``FleetStateService``, written once and mixed into each version's generated servicer.

Each method converts the request's fields, calls a domain service of the call's namespace and converts the
result with the version's ``VersionAdapter``; errors are mapped by the call-scope interceptor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from fleet_emulator.api.convert import VersionAdapter
from fleet_emulator.domain.namespaces import Namespaces

Context = Any  # grpc.aio.ServicerContext; unused by the methods, which raise domain errors instead


def optional(request: Any, field: str) -> str | None:
    """The value of an ``optional`` string field, or None when the client did not set it or left it empty."""
    value: str = getattr(request, field)
    return value if request.HasField(field) and value else None


class FleetStateApi:
    adapter: ClassVar[VersionAdapter]

    def __init__(self, namespaces: Namespaces) -> None:
        self.namespaces = namespaces

    async def ListFleets(self, request: Any, context: Context) -> Any:
        fleets = (await self.namespaces.current()).emulation.fleets
        page = await fleets.list_fleets(request.page_size, request.page_token)
        found = [self.adapter.fleet(v) for v in page.items]
        return self.adapter.pb.ListFleetsResponse(fleets=found, next_page_token=page.next_page_token)

    async def GetFleet(self, request: Any, context: Context) -> Any:
        fleets = (await self.namespaces.current()).emulation.fleets
        view = await fleets.get_fleet(request.fleet_id)
        return self.adapter.pb.GetFleetResponse(fleet=self.adapter.fleet(view))

    async def ListVehicles(self, request: Any, context: Context) -> Any:
        fleets = (await self.namespaces.current()).emulation.fleets
        page = await fleets.list_vehicles(request.fleet_id, request.page_size, request.page_token)
        vehicles = [self.adapter.vehicle(v) for v in page.items]
        return self.adapter.pb.ListVehiclesResponse(vehicles=vehicles, next_page_token=page.next_page_token)

    async def GetVehicle(self, request: Any, context: Context) -> Any:
        fleets = (await self.namespaces.current()).emulation.fleets
        vehicle = await fleets.get_vehicle(request.vehicle_id)
        return self.adapter.pb.GetVehicleResponse(vehicle=self.adapter.vehicle(vehicle))

    async def StreamVehicleEvents(self, request: Any, context: Context) -> AsyncIterator[Any]:
        streams = (await self.namespaces.current()).emulation.streams
        messages = await streams.subscribe(request.event_id, optional(request, "last_message_id"))
        async for event, message_id in messages:
            converted = self.adapter.event(event) if event is not None else None
            yield self.adapter.pb.StreamResponse(event=converted, message_id=str(message_id))

    async def PollVehicleEvents(self, request: Any, context: Context) -> Any:
        streams = (await self.namespaces.current()).emulation.streams
        events, message_id = await streams.poll(request.event_id, optional(request, "last_message_id"))
        converted = [self.adapter.event(e) for e in events]
        return self.adapter.pb.PollResponse(events=converted, message_id=str(message_id))

    async def SubscribeToVehicleStates(self, request: Any, context: Context) -> AsyncIterator[Any]:
        live = (await self.namespaces.current()).emulation.live
        async for vehicle in live.subscribe(request.fleet_id, list(request.vehicle_ids)):
            yield self.adapter.pb.SubscribeToVehicleStatesResponse(vehicle=self.adapter.vehicle(vehicle))
