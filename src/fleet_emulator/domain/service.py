"""The fleet-state service every API version calls: validation, pagination and reads over the backend.

Methods take plain request values (as the protos carry them, so empty string and 0 mean unset) and return
domain objects or raise ``EmulatorError`` subclasses; the versioned adapters only convert.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from fleet_emulator.backends.base import StateStore
from fleet_emulator.domain import paging, reasons
from fleet_emulator.domain.access import current_access
from fleet_emulator.domain.clock import Clock
from fleet_emulator.domain.errors import Violations
from fleet_emulator.domain.lookups import existing_fleet, existing_vehicle
from fleet_emulator.domain.models import Fleet, Vehicle
from fleet_emulator.domain.scenario import Scenario
from fleet_emulator.domain.validation import canonical_vehicle_id, check_fleet_id

T = TypeVar("T", Fleet, Vehicle)
Item = TypeVar("Item")


@dataclass(frozen=True)
class FleetView:
    fleet: Fleet
    vehicle_count: int


@dataclass(frozen=True)
class Page(Generic[Item]):
    items: Sequence[Item]
    next_page_token: str


class FleetService:
    def __init__(self, store: StateStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    async def seed(self, scenario: Scenario) -> bool:
        """Load the scenario unless another replica already did on this store; True if it was loaded."""
        if not await self.store.claim_seeding():
            return False
        await self.store.put_all(scenario.fleets, scenario.vehicles)
        return True

    async def list_fleets(self, page_size: int, page_token: str) -> Page[FleetView]:
        violations = Violations()
        size = paging.check_page_size(page_size, violations)
        violations.raise_if_any(reasons.FIELD_INVALID)
        binding = paging.binding_of("ListFleets")
        page = await self._page(binding, page_token, size, self.store.list_fleets)
        visible = [f for f in page.items if current_access.get().allows(f.id)]  # pages may come out short
        views = [FleetView(f, await self.store.count_vehicles(f.id)) for f in visible]
        return Page(views, page.next_page_token)

    async def get_fleet(self, fleet_id: str) -> FleetView:
        violations = Violations()
        check_fleet_id(fleet_id, violations)
        violations.raise_if_any(reasons.FIELD_INVALID)
        fleet = await existing_fleet(self.store, fleet_id)
        return FleetView(fleet, await self.store.count_vehicles(fleet_id))

    async def list_vehicles(self, fleet_id: str, page_size: int, page_token: str) -> Page[Vehicle]:
        violations = Violations()
        check_fleet_id(fleet_id, violations)
        size = paging.check_page_size(page_size, violations)
        violations.raise_if_any(reasons.FIELD_INVALID)
        binding = paging.binding_of("ListVehicles", fleet_id=fleet_id)
        if page_token:
            await self._cursor(page_token, binding)  # token errors before existence: the token is the input
        await existing_fleet(self.store, fleet_id)
        return await self._page(
            binding, page_token, size, lambda after, n: self.store.list_vehicles(fleet_id, after, n)
        )

    async def get_vehicle(self, vehicle_id: str) -> Vehicle:
        violations = Violations()
        canonical = canonical_vehicle_id(vehicle_id, violations)
        violations.raise_if_any(reasons.FIELD_INVALID)
        return await existing_vehicle(self.store, canonical)

    async def _cursor(self, token: str, binding: str) -> paging.PageCursor:
        stored = await self.store.load_cursor(token) if paging.is_well_formed(token) else None
        return paging.check_cursor(token, stored, binding, self.clock.now())

    async def _page(
        self,
        binding: str,
        token: str,
        size: int,
        fetch: Callable[[str, int], Awaitable[list[T]]],
    ) -> Page[T]:
        """One key-set page: the items after the token's key, and a token for the next page if any."""
        after = (await self._cursor(token, binding)).after_key if token else ""
        items = await fetch(after, size + 1)
        if len(items) <= size:
            return Page(items, "")
        items = items[:size]
        next_token = paging.new_token()
        cursor = paging.PageCursor(binding, items[-1].id, self.clock.now() + paging.TOKEN_LIFETIME)
        await self.store.save_cursor(next_token, cursor, paging.TOKEN_LIFETIME * 2)
        return Page(items, next_token)
