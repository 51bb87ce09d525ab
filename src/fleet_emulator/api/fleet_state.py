"""The RPC methods of ``FleetStateService``, written once and mixed into each version's generated servicer.

Each method converts the request's fields, calls a domain service of the call's namespace and converts the
result with the version's ``VersionAdapter``, adding unknown values when the namespace asks for them
(``surprises.py``); errors are mapped by the call-scope interceptor.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from fleet_emulator.api.convert import VersionAdapter
from fleet_emulator.api.surprises import surprise
from fleet_emulator.api.wire import assemble
from fleet_emulator.domain.journal import Kept
from fleet_emulator.domain.namespaces import Namespace, Namespaces
from fleet_emulator.telemetry import metrics

Context = Any  # grpc.aio.ServicerContext; unused by the methods, which raise domain errors instead


def answer(namespace: Namespace, response: Any) -> Any:
    """The response as it goes out: with unknown values if the namespace's policies say so. A response
    joined from cached bytes (``wire.py``) is then read back as a message of its own to change."""
    if not namespace.policies.unknown_values:
        return response
    return surprise(response.message if isinstance(response, Kept) else response)


def optional(request: Any, field: str) -> str | None:
    """The value of an ``optional`` string field, or None when the client did not set it or left it empty."""
    value: str = getattr(request, field)
    return value if request.HasField(field) and value else None


class FleetStateApi:
    adapter: ClassVar[VersionAdapter]

    def __init__(self, namespaces: Namespaces) -> None:
        self.namespaces = namespaces

    async def ListFleets(self, request: Any, context: Context) -> Any:
        namespace = await self.namespaces.current()
        fleets = namespace.emulation.fleets
        page = await fleets.list_fleets(request.page_size, request.page_token)
        found = [self.adapter.fleet(v) for v in page.items]
        return answer(
            namespace, self.adapter.pb.ListFleetsResponse(fleets=found, next_page_token=page.next_page_token)
        )

    async def GetFleet(self, request: Any, context: Context) -> Any:
        namespace = await self.namespaces.current()
        fleets = namespace.emulation.fleets
        view = await fleets.get_fleet(request.fleet_id)
        return answer(namespace, self.adapter.pb.GetFleetResponse(fleet=self.adapter.fleet(view)))

    async def ListVehicles(self, request: Any, context: Context) -> Any:
        namespace = await self.namespaces.current()
        fleets = namespace.emulation.fleets
        page = await fleets.list_vehicles(request.fleet_id, request.page_size, request.page_token)
        vehicles = [self.adapter.vehicle_bytes(v) for v in page.items]
        response = self.adapter.pb.ListVehiclesResponse
        return answer(namespace, assemble(response, vehicles=vehicles, next_page_token=page.next_page_token))

    async def GetVehicle(self, request: Any, context: Context) -> Any:
        namespace = await self.namespaces.current()
        fleets = namespace.emulation.fleets
        vehicle = await namespace.emulation.wake_ups.settled(await fleets.get_vehicle(request.vehicle_id))
        response = assemble(self.adapter.pb.GetVehicleResponse, vehicle=self.adapter.vehicle_bytes(vehicle))
        return answer(namespace, response)

    async def StreamVehicleEvents(self, request: Any, context: Context) -> AsyncIterator[Any]:
        """Each message is serialized once for all subscribers of the event (``VersionAdapter``)."""
        namespace = await self.namespaces.current()
        streams = namespace.emulation.streams
        messages = await streams.subscribe(request.event_id, optional(request, "last_message_id"))
        response, delivered = self.adapter.pb.StreamResponse, metrics.delivered(self.adapter.name)
        async for entry, message_id in messages:
            if entry is None:
                yield answer(namespace, assemble(response, message_id=str(message_id)))
            else:
                yield answer(namespace, self.adapter.stream_message(entry))
                delivered.inc()  # once the message went out, as the generator resumes

    async def PollVehicleEvents(self, request: Any, context: Context) -> Any:
        namespace = await self.namespaces.current()
        streams = namespace.emulation.streams
        entries, message_id = await streams.poll(request.event_id, optional(request, "last_message_id"))
        event_bytes = [self.adapter.entry_bytes(e) for e in entries]
        response = assemble(self.adapter.pb.PollResponse, events=event_bytes, message_id=str(message_id))
        return answer(namespace, response)

    async def SubscribeToVehicleStates(self, request: Any, context: Context) -> AsyncIterator[Any]:
        namespace = await self.namespaces.current()
        live = namespace.emulation.live
        response = self.adapter.pb.SubscribeToVehicleStatesResponse
        async for vehicle in live.subscribe(request.fleet_id, list(request.vehicle_ids)):
            yield answer(namespace, assemble(response, vehicle=self.adapter.vehicle_bytes(vehicle)))
