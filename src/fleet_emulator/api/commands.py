"""The command RPCs of v1 and v2 (v1beta4 has none), mixed into their servicers beside ``FleetStateApi``.

``WakeUpVehicle``, ``LockVehicle``, ``UnlockVehicle``, ``HonkHorn`` and ``FlashLights`` call the namespace's
``VehicleCommands`` (``domain/commands.py``), ``UpdateVehicle`` its ``VehicleEdits``; the version's adapter
converts, and the response gets unknown values when the namespace asks for them, as every response does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from fleet_emulator.api.convert import VersionAdapter
from fleet_emulator.api.fleet_state import Context, answer
from fleet_emulator.domain.events import VehicleCommand
from fleet_emulator.domain.field_paths import FieldPath
from fleet_emulator.domain.namespaces import Namespaces


class CommandsApi:
    adapter: ClassVar[VersionAdapter]
    namespaces: Namespaces

    async def WakeUpVehicle(self, request: Any, context: Context) -> Any:
        namespace = await self.namespaces.current()
        vehicle = await namespace.emulation.commands.wake_up(request.vehicle_id, namespace.policies)
        return answer(namespace, self.adapter.pb.WakeUpVehicleResponse(vehicle=self.adapter.vehicle(vehicle)))

    async def LockVehicle(self, request: Any, context: Context) -> Any:
        return await self._execute(request, VehicleCommand.LOCK, self.adapter.pb.LockVehicleResponse)

    async def UnlockVehicle(self, request: Any, context: Context) -> Any:
        return await self._execute(request, VehicleCommand.UNLOCK, self.adapter.pb.UnlockVehicleResponse)

    async def HonkHorn(self, request: Any, context: Context) -> Any:
        return await self._execute(request, VehicleCommand.HONK_HORN, self.adapter.pb.HonkHornResponse)

    async def FlashLights(self, request: Any, context: Context) -> Any:
        return await self._execute(request, VehicleCommand.FLASH_LIGHTS, self.adapter.pb.FlashLightsResponse)

    async def _execute(self, request: Any, command: VehicleCommand, response: Callable[..., Any]) -> Any:
        namespace = await self.namespaces.current()
        commands = namespace.emulation.commands
        result, vehicle = await commands.execute(request.vehicle_id, command, request.idempotency_key)
        converted = self.adapter.to_message(result, self.adapter.pb.CommandResult.DESCRIPTOR)
        return answer(namespace, response(result=converted, vehicle=self.adapter.vehicle(vehicle)))

    async def UpdateVehicle(self, request: Any, context: Context) -> Any:
        namespace = await self.namespaces.current()
        sent, spec = request.vehicle, self.adapter.spec_field
        # Only what UpdateVehicle may change is converted: the rest (times, say) may hold anything.
        editable = self.adapter.pb.Vehicle(
            label=sent.label, operational_status=sent.operational_status, **{spec: getattr(sent, spec)}
        )
        paths = [FieldPath(p, self.adapter.domain_path(p)) for p in request.update_mask.paths]
        edits = namespace.emulation.edits
        vehicle = await edits.update(sent.id, self.adapter.vehicle_from(editable), paths, sent.etag)
        return answer(namespace, self.adapter.pb.UpdateVehicleResponse(vehicle=self.adapter.vehicle(vehicle)))
