"""Creating, changing and deleting fleets and vehicles (the admin service's part of the state).

Changing a vehicle's state goes through ``VehicleUpdates`` so that it emits events; creating and deleting
emit none (a fleet API has no such events).
"""

from __future__ import annotations

import dataclasses
import uuid

from fleet_emulator.backends.base import StateStore
from fleet_emulator.domain import reasons
from fleet_emulator.domain.clock import Clock
from fleet_emulator.domain.errors import AlreadyExists, Violations
from fleet_emulator.domain.field_paths import check_paths, copy_paths
from fleet_emulator.domain.lookups import existing_fleet, existing_vehicle
from fleet_emulator.domain.models import (
    ChargingState,
    ConnectivityState,
    Door,
    DoorState,
    Fleet,
    LockState,
    OperationalStatus,
    Vehicle,
)
from fleet_emulator.domain.scenario import DOOR_POSITIONS
from fleet_emulator.domain.validation import canonical_vehicle_id, check_fleet_id
from fleet_emulator.domain.value_checks import check_value

FLEET_IMMUTABLE = frozenset({"id", "update_time"})


def with_defaults(vehicle: Vehicle) -> Vehicle:
    """What a new vehicle leaves unspecified, as a parked, locked, online vehicle with closed doors has it."""
    battery = vehicle.battery
    if battery.charging_state is ChargingState.UNSPECIFIED:
        battery = dataclasses.replace(battery, charging_state=ChargingState.NOT_CHARGING)
    unspecified = vehicle.connectivity is ConnectivityState.UNSPECIFIED
    return dataclasses.replace(
        vehicle,
        connectivity=ConnectivityState.ONLINE if unspecified else vehicle.connectivity,
        operational_status=OperationalStatus.AVAILABLE
        if vehicle.operational_status is OperationalStatus.UNSPECIFIED
        else vehicle.operational_status,
        lock_state=LockState.LOCKED if vehicle.lock_state is LockState.UNSPECIFIED else vehicle.lock_state,
        battery=battery,
        doors=vehicle.doors or tuple(Door(p, DoorState.CLOSED) for p in DOOR_POSITIONS),
    )


class Inventory:
    def __init__(self, store: StateStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def create_fleet(self, fleet: Fleet) -> Fleet:
        violations = Violations()
        check_fleet_id(fleet.id, violations, "fleet.id")
        check_value(fleet, "fleet", violations)
        violations.raise_if_any(reasons.FIELD_INVALID)
        if await self.store.get_fleet(fleet.id) is not None:
            raise AlreadyExists(
                reasons.FLEET_ALREADY_EXISTS,
                f"fleet {fleet.id!r} exists",
                resource_type="fleet",
                resource_name=fleet.id,
                fleet_id=fleet.id,
            )
        created = dataclasses.replace(
            fleet, display_name=fleet.display_name or fleet.id, update_time=self.clock.now()
        )
        await self.store.put_fleet(created)
        return created

    async def update_fleet(self, fleet_id: str, source: Fleet, paths: list[str]) -> Fleet:
        violations = Violations()
        check_fleet_id(fleet_id, violations, "fleet.id")
        check_paths(Fleet, paths, FLEET_IMMUTABLE, violations)
        check_value(source, "fleet", violations)
        violations.raise_if_any(reasons.FIELD_INVALID)
        old = await existing_fleet(self.store, fleet_id)
        changed = dataclasses.replace(copy_paths(old, source, paths), update_time=self.clock.now())
        await self.store.put_fleet(changed)
        return changed

    async def delete_fleet(self, fleet_id: str) -> None:
        violations = Violations()
        check_fleet_id(fleet_id, violations)
        violations.raise_if_any(reasons.FIELD_INVALID)
        if not await self.store.delete_fleet(fleet_id):
            await existing_fleet(self.store, fleet_id)  # raises the NOT_FOUND

    async def create_vehicle(self, vehicle: Vehicle) -> Vehicle:
        violations = Violations()
        vehicle_id = (
            canonical_vehicle_id(vehicle.id, violations, "vehicle.id") if vehicle.id else str(uuid.uuid4())
        )
        check_fleet_id(vehicle.fleet_id, violations, "vehicle.fleet_id")
        check_value(vehicle, "vehicle", violations)
        violations.raise_if_any(reasons.FIELD_INVALID)
        await existing_fleet(self.store, vehicle.fleet_id)
        if await self.store.get_vehicle(vehicle_id) is not None:
            raise AlreadyExists(
                reasons.VEHICLE_ALREADY_EXISTS,
                f"vehicle {vehicle_id} exists",
                resource_type="vehicle",
                resource_name=vehicle_id,
                vehicle_id=vehicle_id,
            )
        created = with_defaults(
            dataclasses.replace(vehicle, id=vehicle_id, label=vehicle.label or vehicle_id[:8])
        )
        created = created.stamped(self.clock.now())
        await self.store.put_vehicle(created)
        return created

    async def delete_vehicle(self, vehicle_id: str) -> None:
        violations = Violations()
        canonical = canonical_vehicle_id(vehicle_id, violations)
        violations.raise_if_any(reasons.FIELD_INVALID)
        if not await self.store.delete_vehicle(canonical):
            await existing_vehicle(self.store, canonical)  # raises the NOT_FOUND
