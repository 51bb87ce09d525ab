"""Waking vehicles up (seed 000): an asleep vehicle comes online a while after a wake-up, on the emulator's
clock.

``request`` schedules it: the delay lies between the namespace's ``wake_up_delay_min`` and ``_max``, drawn
from a generator seeded with the vehicle id and the number of the wake-up, so runs repeat. The due time and
the flow id of the call are stored with the vehicle (``Vehicle.wake_up``), so that any replica can settle it;
a wake-up while one is pending keeps the first. ``settled`` brings a vehicle whose wake-up is due online, as
a normal update (ConnectivityChanged event, live state) with the flow id of the wake-up call: commands and
GetVehicle read vehicles through it, and the admin clock RPCs and the emulator's settling loop call
``settle_due`` for the wake-ups scheduled in the namespace's ``ControlStore``, by any replica.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta

from fleet_emulator.backends.base import ControlStore, StateStore
from fleet_emulator.domain import reasons
from fleet_emulator.domain.clock import Clock
from fleet_emulator.domain.errors import FailedPrecondition, NotFound, PreconditionViolation
from fleet_emulator.domain.flow import current_flow_id
from fleet_emulator.domain.models import ConnectivityState, PendingWakeUp, Vehicle
from fleet_emulator.domain.policies import Policies
from fleet_emulator.domain.updates import VehicleUpdates

WAKE_UP = "WAKE_UP"  # the counter of a vehicle's scheduled wake-ups, among its command counts
MILLISECOND = timedelta(milliseconds=1)


def wake_up_delay(vehicle_id: str, number: int, policies: Policies) -> timedelta:
    """The delay of the vehicle's ``number``-th wake-up (from 1), in whole milliseconds, as in every run."""
    draws = random.Random(f"{vehicle_id}/{number}")
    shortest = policies.wake_up_delay_min // MILLISECOND
    longest = max(shortest, policies.wake_up_delay_max // MILLISECOND)
    return draws.randint(shortest, longest) * MILLISECOND


def not_online(vehicle: Vehicle) -> FailedPrecondition:
    """FAILED_PRECONDITION for a command to a vehicle that is asleep or offline."""
    asleep = vehicle.connectivity is ConnectivityState.ASLEEP
    if asleep:
        reason, advice = reasons.VEHICLE_ASLEEP, "wake it up (WakeUpVehicle) and wait until it is online"
    else:
        reason, advice = reasons.VEHICLE_OFFLINE, "it cannot be reached, not even to wake it up"
    state = f"CONNECTIVITY_STATE_{vehicle.connectivity.name}"
    description = f"the vehicle is {vehicle.connectivity.name.lower()}: {advice}"
    return FailedPrecondition(
        reason,
        f"vehicle {vehicle.id} is {vehicle.connectivity.name.lower()}: {advice}",
        [PreconditionViolation("VEHICLE_STATE", f"vehicles/{vehicle.id}", description)],
        vehicle_id=vehicle.id,
        connectivity=state,
    )


class WakeUps:
    def __init__(
        self, store: StateStore, control: ControlStore, updates: VehicleUpdates, clock: Clock
    ) -> None:
        self.store = store
        self.control = control
        self.updates = updates
        self.clock = clock

    async def request(self, vehicle: Vehicle, policies: Policies) -> Vehicle:
        """Wake a vehicle up; returns it as it is now (an asleep one stays so until its wake-up is due)."""
        vehicle = await self.settled(vehicle)
        if vehicle.connectivity is ConnectivityState.OFFLINE:
            raise not_online(vehicle)
        if vehicle.connectivity is not ConnectivityState.ASLEEP or vehicle.wake_up is not None:
            return vehicle
        number = await self.store.count_command(vehicle.id, WAKE_UP)
        due = self.clock.now() + wake_up_delay(vehicle.id, number, policies)
        wake_up = PendingWakeUp(due, current_flow_id.get())

        def schedule(old: Vehicle) -> Vehicle:
            if old.connectivity is not ConnectivityState.ASLEEP or old.wake_up is not None:
                return old  # changed meanwhile: woken or asleep no more
            return dataclasses.replace(old, wake_up=wake_up)

        vehicle, _ = await self.updates.update(vehicle.id, schedule)
        if vehicle.wake_up is not None:
            await self.control.schedule_wake_up(vehicle.id, vehicle.wake_up.due)
        return vehicle

    async def settled(self, vehicle: Vehicle) -> Vehicle:
        """The vehicle, brought online first if its wake-up is due."""
        wake_up = vehicle.wake_up
        if wake_up is None or wake_up.due > self.clock.now():
            return vehicle
        flow = current_flow_id.set(wake_up.flow_id)
        try:
            vehicle, _ = await self.updates.update(vehicle.id, self._come_online)
        finally:
            current_flow_id.reset(flow)
        if vehicle.wake_up is None:
            await self.control.forget_wake_up(vehicle.id)
        return vehicle

    def _come_online(self, old: Vehicle) -> Vehicle:
        if old.wake_up is None or old.wake_up.due > self.clock.now():
            return old
        if old.connectivity is ConnectivityState.ASLEEP:
            return dataclasses.replace(old, connectivity=ConnectivityState.ONLINE)  # drops the wake-up
        return dataclasses.replace(old, wake_up=None)

    async def settle_due(self) -> None:
        """Bring online every vehicle whose scheduled wake-up is due."""
        for vehicle_id in await self.control.due_wake_ups(self.clock.now()):
            vehicle = await self.store.get_vehicle(vehicle_id)
            if vehicle is None or vehicle.wake_up is None:  # deleted, reset, or settled elsewhere
                await self.control.forget_wake_up(vehicle_id)
                continue
            try:
                await self.settled(vehicle)
            except NotFound:  # deleted meanwhile
                await self.control.forget_wake_up(vehicle_id)
