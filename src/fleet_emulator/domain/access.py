"""Which fleets the current call may see: the fleet scopes of its bearer token (AIP-193 order).

The call-scope interceptor sets ``current_access`` from the token (``auth.py``); calls without scopes (auth
off, the admin service, the simulator) see every fleet. Lookups check the scope before existence, so a
client learns nothing about fleets and vehicles outside its scope: a restricted caller gets
``PERMISSION_DENIED`` for a vehicle it may not see and for one that does not exist alike.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from fleet_emulator.domain import reasons
from fleet_emulator.domain.errors import PermissionDenied


@dataclass(frozen=True)
class Access:
    fleets: frozenset[str] | None = None  # None: every fleet

    @property
    def restricted(self) -> bool:
        return self.fleets is not None

    def allows(self, fleet_id: str) -> bool:
        return self.fleets is None or fleet_id in self.fleets


EVERY_FLEET = Access()
current_access: ContextVar[Access] = ContextVar("current_access", default=EVERY_FLEET)


def check_fleet(fleet_id: str) -> None:
    """PERMISSION_DENIED unless the current call may see ``fleet_id`` (whether or not it exists)."""
    if not current_access.get().allows(fleet_id):
        raise PermissionDenied(
            reasons.FLEET_NOT_IN_SCOPE,
            f"the token's fleet scopes do not include fleet {fleet_id!r}",
            resource_type="fleet",
            resource_name=fleet_id,
            fleet_id=fleet_id,
        )


def vehicle_denied(vehicle_id: str) -> PermissionDenied:
    """The error for a vehicle a restricted caller may not see, or that does not exist."""
    return PermissionDenied(
        reasons.FLEET_NOT_IN_SCOPE,
        f"vehicle {vehicle_id} is not in a fleet the token's scopes include",
        resource_type="vehicle",
        resource_name=vehicle_id,
        vehicle_id=vehicle_id,
    )
