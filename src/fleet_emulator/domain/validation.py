"""Shared field checks that add violations to a request's ``Violations`` instead of raising one by one."""

from __future__ import annotations

import re
import uuid

from fleet_emulator.domain.errors import Violations

FLEET_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
CANONICAL_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)  # as str(uuid.UUID) writes it


def check_fleet_id(fleet_id: str, violations: Violations, field: str = "fleet_id") -> None:
    if not fleet_id:
        violations.add(field, "is required")
    elif not FLEET_ID_PATTERN.fullmatch(fleet_id):
        violations.add(field, "must be 1 to 63 lowercase letters, digits or hyphens, starting alphanumeric")


def canonical_vehicle_id(vehicle_id: str, violations: Violations, field: str = "vehicle_id") -> str:
    """The lowercase hyphenated form of a vehicle UUID, or a violation when it is not a UUID."""
    if not vehicle_id:
        violations.add(field, "is required")
        return ""
    if CANONICAL_UUID.fullmatch(vehicle_id):
        return vehicle_id
    try:
        return str(uuid.UUID(vehicle_id))
    except ValueError:
        violations.add(field, "must be a UUID such as 94d36e21-ca69-4a5b-b2b7-8068122e7362")
        return ""
