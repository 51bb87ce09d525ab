"""Reading a fleet or vehicle that must exist: the stored object, or the one NOT_FOUND error for it.

Both check the current call's fleet scopes first (``access.py``): PERMISSION_DENIED comes before NOT_FOUND.
"""

from __future__ import annotations

from fleet_emulator.backends.base import StateStore
from fleet_emulator.domain import reasons
from fleet_emulator.domain.access import check_fleet, current_access, vehicle_denied
from fleet_emulator.domain.errors import NotFound
from fleet_emulator.domain.models import Fleet, Vehicle


async def existing_fleet(store: StateStore, fleet_id: str) -> Fleet:
    check_fleet(fleet_id)
    fleet = await store.get_fleet(fleet_id)
    if fleet is None:
        raise NotFound(
            reasons.FLEET_NOT_FOUND,
            f"fleet {fleet_id!r} does not exist",
            resource_type="fleet",
            resource_name=fleet_id,
            fleet_id=fleet_id,
        )
    return fleet


async def existing_vehicle(store: StateStore, vehicle_id: str, fleet_id: str = "") -> Vehicle:
    """The vehicle, which must also belong to ``fleet_id`` when one is given."""
    if fleet_id:
        check_fleet(fleet_id)
    vehicle = await store.get_vehicle(vehicle_id)
    access = current_access.get()
    if access.restricted and (vehicle is None or not access.allows(vehicle.fleet_id)):
        raise vehicle_denied(vehicle_id)
    if vehicle is None or (fleet_id and vehicle.fleet_id != fleet_id):
        where = f" in fleet {fleet_id!r}" if fleet_id else ""
        raise NotFound(
            reasons.VEHICLE_NOT_FOUND,
            f"vehicle {vehicle_id} does not exist{where}",
            resource_type="vehicle",
            resource_name=vehicle_id,
            vehicle_id=vehicle_id,
        )
    return vehicle
