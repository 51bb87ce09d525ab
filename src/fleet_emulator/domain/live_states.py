"""Non-durable full-state streams (API.md section 6): current states first, then each change, conflated.

The subscription to the feed is opened before the current states are read, so no change made in between
is lost; a state older than one already sent for the same vehicle is skipped, so a late delivery never
rolls a subscriber back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from fleet_emulator.backends.base import StateFeed, StateStore
from fleet_emulator.domain import reasons
from fleet_emulator.domain.errors import Violations
from fleet_emulator.domain.lookups import existing_fleet, existing_vehicle
from fleet_emulator.domain.models import Vehicle
from fleet_emulator.domain.validation import canonical_vehicle_id, check_fleet_id

PAGE = 1000


class LiveStates:
    def __init__(self, store: StateStore, feed: StateFeed) -> None:
        self.store = store
        self.feed = feed

    async def subscribe(self, fleet_id: str, vehicle_ids: Sequence[str]) -> AsyncIterator[Vehicle]:
        violations = Violations()
        check_fleet_id(fleet_id, violations)
        wanted = [canonical_vehicle_id(v, violations, f"vehicle_ids[{i}]") for i, v in enumerate(vehicle_ids)]
        violations.raise_if_any(reasons.FIELD_INVALID)
        await existing_fleet(self.store, fleet_id)
        async with self.feed.subscribe(fleet_id, wanted) as subscription:
            sent: dict[str, tuple[datetime, str]] = {}
            for vehicle in await self._current(fleet_id, wanted):
                sent[vehicle.id] = (vehicle.update_time, vehicle.etag)
                yield vehicle
            async for vehicle in subscription:
                previous = sent.get(vehicle.id)
                if previous and (vehicle.update_time < previous[0] or vehicle.etag == previous[1]):
                    continue
                sent[vehicle.id] = (vehicle.update_time, vehicle.etag)
                yield vehicle

    async def _current(self, fleet_id: str, wanted: list[str]) -> list[Vehicle]:
        if wanted:
            return [await existing_vehicle(self.store, v, fleet_id) for v in dict.fromkeys(wanted)]
        vehicles: list[Vehicle] = []
        while batch := await self.store.list_vehicles(fleet_id, vehicles[-1].id if vehicles else "", PAGE):
            vehicles += batch
        return vehicles
