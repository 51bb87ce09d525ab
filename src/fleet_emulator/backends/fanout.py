"""Local fan-out of vehicle states to live subscribers, with conflation and bounded memory.

Each subscription holds at most one pending state per vehicle (a newer state replaces an older one that
was not yet taken), so a slow subscriber costs memory bounded by the number of vehicles it watches,
never a growing queue. Both backends deliver through this: memory directly on publish, Redis from its
one pub/sub listener per process. A subscription can be failed (the backend went away): its reader
then gets the error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager

from fleet_emulator.domain.errors import EmulatorError
from fleet_emulator.domain.models import Vehicle


class Subscription:
    def __init__(self, fleet_id: str, vehicle_ids: Iterable[str]) -> None:
        self.fleet_id = fleet_id
        self.vehicle_ids = frozenset(vehicle_ids)
        self.pending: dict[str, Vehicle] = {}
        self.error: EmulatorError | None = None
        self._wake = asyncio.Event()

    def wants(self, vehicle: Vehicle) -> bool:
        return vehicle.fleet_id == self.fleet_id and (not self.vehicle_ids or vehicle.id in self.vehicle_ids)

    def offer(self, vehicle: Vehicle) -> None:
        self.pending.pop(vehicle.id, None)  # re-insert so that the order is the order of the latest changes
        self.pending[vehicle.id] = vehicle
        self._wake.set()

    def fail(self, error: EmulatorError) -> None:
        self.error = error
        self._wake.set()

    async def __aiter__(self) -> AsyncIterator[Vehicle]:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.error is not None:
                raise self.error
            while self.pending:
                vehicle_id = next(iter(self.pending))
                yield self.pending.pop(vehicle_id)


class LocalFanout:
    def __init__(self) -> None:
        self.subscriptions: set[Subscription] = set()

    @contextmanager
    def subscription(self, fleet_id: str, vehicle_ids: Iterable[str]) -> Iterator[Subscription]:
        subscription = Subscription(fleet_id, vehicle_ids)
        self.subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self.subscriptions.discard(subscription)

    def deliver(self, vehicle: Vehicle) -> None:
        for subscription in self.subscriptions:
            if subscription.wants(vehicle):
                subscription.offer(vehicle)

    def fail_all(self, error: EmulatorError) -> None:
        for subscription in self.subscriptions:
            subscription.fail(error)
