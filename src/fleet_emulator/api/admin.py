"""The admin service (``emulator.admin.v1.AdminService``): how tests steer the emulator.

Fleets, vehicles and events travel in their ``moia.fleet.state.v2`` form and are converted with the v2
adapter; every method works on the namespace of the call, except the clock, which all namespaces share.
"""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import Any

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as pb
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2_grpc as pb_grpc
from fleet_emulator.api.admin_convert import journal_message, rule_from, rule_message
from fleet_emulator.api.admin_policies import PoliciesAdmin
from fleet_emulator.api.admin_report import ReportAdmin
from fleet_emulator.api.admin_tokens import TokenAdmin
from fleet_emulator.api.convert import timedelta_of, timestamp
from fleet_emulator.api.versions import V2Servicer
from fleet_emulator.domain import reasons
from fleet_emulator.domain.clock import EmulatorClock
from fleet_emulator.domain.errors import FieldViolation, InvalidArgument, NotFound, Violations
from fleet_emulator.domain.field_paths import FieldPath
from fleet_emulator.domain.journal import JournalQuery
from fleet_emulator.domain.namespaces import Namespace, Namespaces
from fleet_emulator.domain.scenario import ScenarioError, parse_scenario
from fleet_emulator.domain.service import FleetView

ADAPTER = V2Servicer.adapter
Context = Any
MAX_JOURNAL_PAGE = 1000
MAX_SOURCE = 200


class AdminServicer(PoliciesAdmin, TokenAdmin, ReportAdmin, pb_grpc.AdminServiceServicer):
    def __init__(self, namespaces: Namespaces, clock: EmulatorClock) -> None:
        self.namespaces = namespaces
        self.clock = clock

    async def _namespace(self) -> Namespace:
        return await self.namespaces.current()

    async def ResetEmulator(
        self, request: pb.ResetEmulatorRequest, context: Context
    ) -> pb.ResetEmulatorResponse:
        namespace = await self._namespace()
        await namespace.reset()
        scenario = namespace.scenario
        return pb.ResetEmulatorResponse(
            fleet_count=len(scenario.fleets), vehicle_count=len(scenario.vehicles)
        )

    async def LoadScenario(
        self, request: pb.LoadScenarioRequest, context: Context
    ) -> pb.LoadScenarioResponse:
        source = request.source[:MAX_SOURCE] or "request"
        try:  # plain CPU work of bounded size (scenario.py), off the event loop
            scenario = await asyncio.to_thread(parse_scenario, request.yaml, source, self.clock.now())
        except ScenarioError as exc:
            problems = [FieldViolation("yaml", line) for line in str(exc).splitlines()]
            raise InvalidArgument(reasons.SCENARIO_INVALID, problems) from exc
        await (await self._namespace()).load(scenario)
        return pb.LoadScenarioResponse(
            name=scenario.name, fleet_count=len(scenario.fleets), vehicle_count=len(scenario.vehicles)
        )

    async def CreateFleet(self, request: pb.CreateFleetRequest, context: Context) -> pb.CreateFleetResponse:
        inventory = (await self._namespace()).emulation.inventory
        fleet = await inventory.create_fleet(ADAPTER.fleet_from(request.fleet))
        return pb.CreateFleetResponse(fleet=ADAPTER.fleet(FleetView(fleet, 0)))

    async def UpdateFleet(self, request: pb.UpdateFleetRequest, context: Context) -> pb.UpdateFleetResponse:
        emulation = (await self._namespace()).emulation
        source = ADAPTER.fleet_from(request.fleet)
        await emulation.inventory.update_fleet(request.fleet.id, source, list(request.update_mask.paths))
        return pb.UpdateFleetResponse(fleet=ADAPTER.fleet(await emulation.fleets.get_fleet(request.fleet.id)))

    async def DeleteFleet(self, request: pb.DeleteFleetRequest, context: Context) -> pb.DeleteFleetResponse:
        await (await self._namespace()).emulation.inventory.delete_fleet(request.fleet_id)
        return pb.DeleteFleetResponse()

    async def CreateVehicle(
        self, request: pb.CreateVehicleRequest, context: Context
    ) -> pb.CreateVehicleResponse:
        inventory = (await self._namespace()).emulation.inventory
        vehicle = await inventory.create_vehicle(ADAPTER.vehicle_from(request.vehicle))
        return pb.CreateVehicleResponse(vehicle=ADAPTER.vehicle(vehicle))

    async def UpdateVehicle(
        self, request: pb.UpdateVehicleRequest, context: Context
    ) -> pb.UpdateVehicleResponse:
        updates = (await self._namespace()).emulation.updates
        paths = [FieldPath(p, ADAPTER.domain_path(p)) for p in request.update_mask.paths]
        source = ADAPTER.vehicle_from(request.vehicle)
        vehicle, events = await updates.update_paths(request.vehicle.id, source, paths)
        return pb.UpdateVehicleResponse(
            vehicle=ADAPTER.vehicle(vehicle), events=[ADAPTER.event(e) for e in events]
        )

    async def DeleteVehicle(
        self, request: pb.DeleteVehicleRequest, context: Context
    ) -> pb.DeleteVehicleResponse:
        await (await self._namespace()).emulation.inventory.delete_vehicle(request.vehicle_id)
        return pb.DeleteVehicleResponse()

    async def PublishEvent(
        self, request: pb.PublishEventRequest, context: Context
    ) -> pb.PublishEventResponse:
        updates = (await self._namespace()).emulation.updates
        message_id, event = await updates.publish(ADAPTER.event_from(request.event))
        return pb.PublishEventResponse(message_id=str(message_id), event=ADAPTER.event(event))

    async def CreateFault(self, request: pb.CreateFaultRequest, context: Context) -> pb.CreateFaultResponse:
        if not request.fault.WhichOneof("action"):
            raise InvalidArgument(
                reasons.FIELD_INVALID, [FieldViolation("fault.action", "one action is required")]
            )
        rule = await (await self._namespace()).faults.add(rule_from(request.fault))
        return pb.CreateFaultResponse(fault=rule_message(rule))

    async def ListFaults(self, request: pb.ListFaultsRequest, context: Context) -> pb.ListFaultsResponse:
        rules = await (await self._namespace()).faults.listed()
        return pb.ListFaultsResponse(faults=[rule_message(r) for r in rules])

    async def DeleteFault(self, request: pb.DeleteFaultRequest, context: Context) -> pb.DeleteFaultResponse:
        if not await (await self._namespace()).faults.delete(request.fault_id):
            raise NotFound(
                reasons.FAULT_NOT_FOUND,
                f"fault {request.fault_id!r} does not exist (spent rules are removed)",
                resource_type="fault",
                resource_name=request.fault_id,
                fault_id=request.fault_id,
            )
        return pb.DeleteFaultResponse()

    async def ClearFaults(self, request: pb.ClearFaultsRequest, context: Context) -> pb.ClearFaultsResponse:
        return pb.ClearFaultsResponse(deleted=await (await self._namespace()).faults.clear())

    async def ListJournalEntries(
        self, request: pb.ListJournalEntriesRequest, context: Context
    ) -> pb.ListJournalEntriesResponse:
        violations = Violations()
        if request.page_size < 0:
            violations.add("page_size", "must not be negative")
        violations.raise_if_any(reasons.FIELD_INVALID)
        journal = (await self._namespace()).journal
        query = JournalQuery(
            method=request.method,
            flow_id=request.flow_id,
            code=request.code if request.HasField("code") else None,
            after=request.after_sequence,
            limit=min(request.page_size or 100, MAX_JOURNAL_PAGE),
        )
        entries = await journal.find(query)
        return pb.ListJournalEntriesResponse(entries=[journal_message(e) for e in entries])

    async def ClearJournal(
        self, request: pb.ClearJournalRequest, context: Context
    ) -> pb.ClearJournalResponse:
        return pb.ClearJournalResponse(deleted=await (await self._namespace()).journal.clear())

    async def GetClock(self, request: pb.GetClockRequest, context: Context) -> pb.GetClockResponse:
        await self.clock.refresh()
        return pb.GetClockResponse(now=timestamp(self.clock.now()), virtual=self.clock.virtual)

    async def SetClock(self, request: pb.SetClockRequest, context: Context) -> pb.SetClockResponse:
        if not request.HasField("time"):
            raise InvalidArgument(reasons.FIELD_INVALID, [FieldViolation("time", "is required")])
        await self.clock.set(request.time.ToDatetime(tzinfo=UTC))
        await self.namespaces.settle_wake_ups()
        return pb.SetClockResponse(now=timestamp(self.clock.now()))

    async def AdvanceClock(
        self, request: pb.AdvanceClockRequest, context: Context
    ) -> pb.AdvanceClockResponse:
        by = timedelta_of(request.by)
        if by.total_seconds() < 0:
            raise InvalidArgument(reasons.FIELD_INVALID, [FieldViolation("by", "must not be negative")])
        await self.clock.advance(by)
        await self.namespaces.settle_wake_ups()
        return pb.AdvanceClockResponse(now=timestamp(self.clock.now()))

    async def UseRealClock(
        self, request: pb.UseRealClockRequest, context: Context
    ) -> pb.UseRealClockResponse:
        await self.clock.use_real_time()
        return pb.UseRealClockResponse(now=timestamp(self.clock.now()))

    async def DeleteNamespace(
        self, request: pb.DeleteNamespaceRequest, context: Context
    ) -> pb.DeleteNamespaceResponse:
        return pb.DeleteNamespaceResponse(existed=await self.namespaces.delete(request.namespace))
