"""All domain services of one emulator over one backend and clock: what the API adapters are given."""

from __future__ import annotations

from dataclasses import dataclass

from fleet_emulator.backends.base import Backend
from fleet_emulator.domain.clock import Clock
from fleet_emulator.domain.commands import VehicleCommands
from fleet_emulator.domain.inventory import Inventory
from fleet_emulator.domain.live_states import LiveStates
from fleet_emulator.domain.scenario import Scenario
from fleet_emulator.domain.service import FleetService
from fleet_emulator.domain.streams import EventStreams, StreamSettings
from fleet_emulator.domain.updates import VehicleUpdates
from fleet_emulator.domain.vehicle_edits import VehicleEdits
from fleet_emulator.domain.wake_ups import WakeUps


@dataclass(frozen=True)
class Emulation:
    backend: Backend
    fleets: FleetService
    streams: EventStreams
    live: LiveStates
    updates: VehicleUpdates
    inventory: Inventory
    wake_ups: WakeUps
    commands: VehicleCommands
    edits: VehicleEdits

    @classmethod
    def build(
        cls, backend: Backend, clock: Clock, stream_settings: StreamSettings | None = None
    ) -> Emulation:
        streams = EventStreams(backend.events, backend.state, clock, stream_settings)
        updates = VehicleUpdates(backend.state, streams, backend.feed, clock)
        wake_ups = WakeUps(backend.state, backend.control, updates, clock)
        return cls(
            backend=backend,
            fleets=FleetService(backend.state, clock),
            streams=streams,
            live=LiveStates(backend.state, backend.feed),
            updates=updates,
            inventory=Inventory(backend.state, clock),
            wake_ups=wake_ups,
            commands=VehicleCommands(backend.state, streams, updates, wake_ups, clock),
            edits=VehicleEdits(backend.state, updates, wake_ups),
        )

    async def reset(self, scenario: Scenario) -> None:
        """Forget everything (state, page tokens, event streams, what steers the namespace) and load the
        scenario."""
        await self.backend.clear()
        await self.fleets.seed(scenario)
