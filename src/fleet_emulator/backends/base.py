"""The backend protocol the domain service uses: one state store for fleets, vehicles and page cursors.

Listing is key-set paginated: ``list_*`` return items whose id sorts after ``after_id``, in id order, at most
``limit`` of them. Every implementation runs the one contract suite in ``tests/contract``. Backend-specific
failures are mapped at the backend's boundary to ``domain.errors.Unavailable``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol

from fleet_emulator.domain.models import Fleet, Vehicle
from fleet_emulator.domain.paging import PageCursor


class StateStore(Protocol):
    async def ping(self) -> None:
        """Return when the backend can serve calls; raise ``Unavailable`` when it cannot."""
        ...

    async def close(self) -> None: ...

    async def clear(self) -> None:
        """Remove every fleet, vehicle and page cursor."""
        ...

    async def claim_seeding(self) -> bool:
        """True for the first caller since the store was created empty or cleared, False for any later one.

        A replica that starts against state that is already there (Redis) leaves it alone.
        """
        ...

    async def put_fleet(self, fleet: Fleet) -> None: ...

    async def get_fleet(self, fleet_id: str) -> Fleet | None: ...

    async def list_fleets(self, after_id: str, limit: int) -> list[Fleet]: ...

    async def delete_fleet(self, fleet_id: str) -> bool:
        """Delete a fleet and its vehicles; False when there was no such fleet."""
        ...

    async def put_vehicle(self, vehicle: Vehicle) -> None:
        """Create or replace a vehicle (it may move to another fleet)."""
        ...

    async def get_vehicle(self, vehicle_id: str) -> Vehicle | None: ...

    async def list_vehicles(self, fleet_id: str, after_id: str, limit: int) -> list[Vehicle]: ...

    async def count_vehicles(self, fleet_id: str) -> int: ...

    async def delete_vehicle(self, vehicle_id: str) -> bool: ...

    async def save_cursor(self, token: str, cursor: PageCursor, keep_for: timedelta) -> None:
        """Store a page cursor; it may be forgotten once ``keep_for`` has passed."""
        ...

    async def load_cursor(self, token: str) -> PageCursor | None: ...
