"""In-memory state store: the embedded default, with zero set-up; state lives as long as the process.

Vehicle ids are kept sorted per fleet so that key-set pages are a bisection, and page cursors are kept in
insertion order and bounded, the oldest forgotten first; so are remembered command results, which are also
forgotten once their time (real time, as in Redis) has passed.
"""

from __future__ import annotations

import bisect
from collections import Counter, OrderedDict
from collections.abc import Sequence
from datetime import datetime, timedelta

from fleet_emulator.domain.models import Fleet, Vehicle
from fleet_emulator.domain.paging import PageCursor

MAX_CURSORS = 100_000
MAX_COMMANDS = 100_000


class MemoryStateStore:
    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._fleets: dict[str, Fleet] = {}
        self._fleet_ids: list[str] = []
        self._vehicles: dict[str, Vehicle] = {}
        self._vehicle_ids: dict[str, list[str]] = {}
        self._cursors: OrderedDict[str, PageCursor] = OrderedDict()
        self._command_counts: Counter[tuple[str, str]] = Counter()
        self._commands: OrderedDict[str, tuple[str, datetime]] = OrderedDict()  # record, kept until
        self._seeded = False

    async def ping(self) -> None:
        return None

    async def clear(self) -> None:
        self._reset()

    async def claim_seeding(self) -> bool:
        first, self._seeded = not self._seeded, True
        return first

    async def put_fleet(self, fleet: Fleet) -> None:
        if fleet.id not in self._fleets:
            bisect.insort(self._fleet_ids, fleet.id)
            self._vehicle_ids[fleet.id] = []
        self._fleets[fleet.id] = fleet

    async def put_all(self, fleets: Sequence[Fleet], vehicles: Sequence[Vehicle]) -> None:
        for fleet in fleets:
            await self.put_fleet(fleet)
        for vehicle in vehicles:
            await self.put_vehicle(vehicle)

    async def get_fleet(self, fleet_id: str) -> Fleet | None:
        return self._fleets.get(fleet_id)

    async def list_fleets(self, after_id: str, limit: int) -> list[Fleet]:
        start = bisect.bisect_right(self._fleet_ids, after_id)
        return [self._fleets[i] for i in self._fleet_ids[start : start + limit]]

    async def delete_fleet(self, fleet_id: str) -> bool:
        if self._fleets.pop(fleet_id, None) is None:
            return False
        self._fleet_ids.remove(fleet_id)
        for vehicle_id in self._vehicle_ids.pop(fleet_id):
            del self._vehicles[vehicle_id]
        return True

    async def put_vehicle(self, vehicle: Vehicle) -> None:
        old = self._vehicles.get(vehicle.id)
        if old is not None and old.fleet_id != vehicle.fleet_id:
            self._vehicle_ids[old.fleet_id].remove(vehicle.id)
        if old is None or old.fleet_id != vehicle.fleet_id:
            bisect.insort(self._vehicle_ids.setdefault(vehicle.fleet_id, []), vehicle.id)
        self._vehicles[vehicle.id] = vehicle

    async def replace_vehicle(self, old: Vehicle, new: Vehicle) -> bool:
        if self._vehicles.get(old.id) != old:
            return False
        await self.put_vehicle(new)
        return True

    async def get_vehicle(self, vehicle_id: str) -> Vehicle | None:
        return self._vehicles.get(vehicle_id)

    async def list_vehicles(self, fleet_id: str, after_id: str, limit: int) -> list[Vehicle]:
        ids = self._vehicle_ids.get(fleet_id, [])
        start = bisect.bisect_right(ids, after_id)
        return [self._vehicles[i] for i in ids[start : start + limit]]

    async def count_vehicles(self, fleet_id: str) -> int:
        return len(self._vehicle_ids.get(fleet_id, []))

    async def delete_vehicle(self, vehicle_id: str) -> bool:
        vehicle = self._vehicles.pop(vehicle_id, None)
        if vehicle is None:
            return False
        self._vehicle_ids[vehicle.fleet_id].remove(vehicle_id)
        return True

    async def save_cursor(self, token: str, cursor: PageCursor, keep_for: timedelta) -> None:
        self._cursors[token] = cursor
        while len(self._cursors) > MAX_CURSORS:
            self._cursors.popitem(last=False)

    async def load_cursor(self, token: str) -> PageCursor | None:
        return self._cursors.get(token)

    async def count_command(self, vehicle_id: str, command: str) -> int:
        self._command_counts[(vehicle_id, command)] += 1
        return self._command_counts[(vehicle_id, command)]

    async def remember_command(self, key: str, record: str, now: datetime, until: datetime) -> str | None:
        kept = self._commands.get(key)
        if kept is not None and kept[1] > now:
            return kept[0]
        self._commands.pop(key, None)
        self._commands[key] = (record, until)
        while len(self._commands) > MAX_COMMANDS:
            self._commands.popitem(last=False)
        return None

    async def replace_command(self, key: str, record: str, now: datetime, until: datetime) -> None:
        self._commands[key] = (record, until)

    async def forget_command(self, key: str) -> None:
        self._commands.pop(key, None)
