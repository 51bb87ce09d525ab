"""UpdateVehicle of v1 and v2 (AIP-134, AIP-154, seed 003): a client changes a vehicle's label, operational
status or static description, optionally only if the vehicle has not changed since it read it.

Paths come as the client named them (``properties.seats`` in v2) with their domain form (``spec.seats``),
and errors name the client's. An empty etag applies the change; otherwise it must equal the vehicle's etag as
read (``W/"…"``) or the part within the quotes (seed 003's weak etags), else ABORTED (``ETAG_MISMATCH``).
The etag is compared inside the update, so within a process two updates based on one etag cannot both apply;
across replicas on one Redis the read and the write are not one atomic step, and both may.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from fleet_emulator.backends.base import StateStore
from fleet_emulator.domain import reasons
from fleet_emulator.domain.errors import Aborted, Violations, shown
from fleet_emulator.domain.field_paths import FieldPath, copy_paths
from fleet_emulator.domain.lookups import existing_vehicle
from fleet_emulator.domain.models import OperationalStatus, Vehicle, VehicleSpec
from fleet_emulator.domain.updates import VehicleUpdates
from fleet_emulator.domain.validation import canonical_vehicle_id
from fleet_emulator.domain.value_checks import CHECKS, MAX_LABEL, check_values_at, text
from fleet_emulator.domain.wake_ups import WakeUps

SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(VehicleSpec))
EDITABLE = frozenset({"label", "operational_status", "spec", *(f"spec.{name}" for name in SPEC_FIELDS)})


def _known_status(value: Any) -> str | None:
    if value is OperationalStatus.UNSPECIFIED:
        known = ", ".join(s.name for s in OperationalStatus if s is not OperationalStatus.UNSPECIFIED)
        return f"must be one of {known} (with the OPERATIONAL_STATUS_ prefix)"
    return None


EDIT_CHECKS = {**CHECKS, "label": text(MAX_LABEL, required=True), "operational_status": _known_status}


def _check(source: Vehicle, paths: Sequence[FieldPath], violations: Violations) -> None:
    if not paths:
        violations.add("update_mask", "must name at least one field path")
    for path in paths:
        if path.domain not in EDITABLE:
            violations.add(
                "update_mask",
                f"{shown(path.name)!r} cannot be changed: UpdateVehicle changes label, "
                "operational_status and the static description (all of it or its fields)",
            )
    check_values_at(source, [p for p in paths if p.domain in EDITABLE], "vehicle", violations, EDIT_CHECKS)


def _matches(etag: str, current: str) -> bool:
    """Whether a client's etag names the current one: as read, or the part within a weak etag's quotes."""
    inner = current.removeprefix("W/").strip('"')
    return etag in (current, inner)


class VehicleEdits:
    def __init__(self, store: StateStore, updates: VehicleUpdates, wake_ups: WakeUps) -> None:
        self.store = store
        self.updates = updates
        self.wake_ups = wake_ups

    async def update(
        self, vehicle_id: str, source: Vehicle, paths: Sequence[FieldPath], etag: str
    ) -> Vehicle:
        """Set the paths of the vehicle to their values in ``source``, if ``etag`` is empty or current."""
        violations = Violations()
        canonical = canonical_vehicle_id(vehicle_id, violations, "vehicle.id")
        _check(source, paths, violations)
        violations.raise_if_any(reasons.FIELD_INVALID)
        await self.wake_ups.settled(await existing_vehicle(self.store, canonical))

        def change(old: Vehicle) -> Vehicle:
            if etag and not _matches(etag, old.etag):
                raise Aborted(
                    reasons.ETAG_MISMATCH,
                    f"vehicle {old.id} changed since its etag was read: read it again and reapply the change",
                    resource_type="vehicle",
                    resource_name=old.id,
                    vehicle_id=old.id,
                )
            return copy_paths(old, source, [p.domain for p in paths])

        updated, _ = await self.updates.update(canonical, change)
        return updated
