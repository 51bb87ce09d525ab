"""Changing vehicles: every change is stored, emitted as events on the fleet's durable stream and sent as
the vehicle's new full state to live subscribers, all carrying the flow id of the call that caused it.
Within a process the changes of one vehicle take turns (``keyed_locks.py``), and across replicas each is a
compare-and-set (``StateStore.replace_vehicle``), so none is lost to another.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence

from fleet_emulator.backends.base import StateFeed, StateStore
from fleet_emulator.domain import reasons
from fleet_emulator.domain.changes import changes_between, event_for
from fleet_emulator.domain.clock import Clock
from fleet_emulator.domain.errors import Violations
from fleet_emulator.domain.events import Event
from fleet_emulator.domain.field_paths import FieldPath, check_paths, copy_paths
from fleet_emulator.domain.flow import current_flow_id
from fleet_emulator.domain.keyed_locks import KeyedLocks
from fleet_emulator.domain.lookups import existing_vehicle
from fleet_emulator.domain.message_ids import MessageId
from fleet_emulator.domain.models import EPOCH, Vehicle
from fleet_emulator.domain.streams import EventStreams
from fleet_emulator.domain.validation import canonical_vehicle_id
from fleet_emulator.domain.value_checks import check_value, check_values_at

IMMUTABLE = frozenset({"id", "fleet_id", "update_time", "etag", "wake_up"})


class VehicleUpdates:
    def __init__(self, store: StateStore, streams: EventStreams, feed: StateFeed, clock: Clock) -> None:
        self.store = store
        self.streams = streams
        self.feed = feed
        self.clock = clock
        self._locks = KeyedLocks()

    async def update(
        self, vehicle_id: str, change: Callable[[Vehicle], Vehicle]
    ) -> tuple[Vehicle, list[Event]]:
        """Apply ``change`` to the stored vehicle; returns the new vehicle and the events it emitted.

        The changes of one vehicle take turns in this process, and the store replaces the vehicle only if no
        other replica changed it since it was read (else ``change`` runs again on the newer state), so
        ``change`` gets the latest stored state and may raise to refuse it (a stale etag). Returning the
        vehicle it got changes nothing. A new connectivity cancels a pending wake-up; a change of the pending
        wake-up alone is stored as it is, with no new etag, event or live state, as no API shows it.
        """
        async with self._locks.hold(vehicle_id):
            while True:  # again when another replica changed the vehicle since it was read
                old = await existing_vehicle(self.store, vehicle_id)
                new = change(old)
                if new is old:
                    return old, []
                if new.connectivity != old.connectivity:
                    new = dataclasses.replace(new, wake_up=None)
                if dataclasses.replace(new, wake_up=None) == dataclasses.replace(old, wake_up=None):
                    if await self.store.replace_vehicle(old, new):
                        return new, []
                    continue
                now = self.clock.now()
                new = new.stamped(now)
                if await self.store.replace_vehicle(old, new):
                    break
            emitted = [event_for(new, c, now, current_flow_id.get()) for c in changes_between(old, new)]
            for event in emitted:
                await self.streams.publish(event)
            await self.feed.publish(new)
        return new, emitted

    async def update_paths(
        self, vehicle_id: str, source: Vehicle, paths: Sequence[FieldPath]
    ) -> tuple[Vehicle, list[Event]]:
        """Set the parts of a vehicle named by ``paths`` to their values in ``source``, which must be values
        a vehicle may hold (``value_checks.py``)."""
        violations = Violations()
        canonical = canonical_vehicle_id(vehicle_id, violations, "vehicle.id")
        domain = [p.domain for p in paths]
        fine = check_paths(Vehicle, domain, IMMUTABLE, violations)
        check_values_at(source, [p for p in paths if p.domain in fine], "vehicle", violations)
        violations.raise_if_any(reasons.FIELD_INVALID)
        return await self.update(canonical, lambda old: copy_paths(old, source, domain))

    async def publish(self, event: Event) -> tuple[MessageId, Event]:
        """Publish an event as given, filling in what is empty: id, fleet, times, flow id. An event with an
        id of its own that the stream still retains is not published again: the answer is the first
        publication's, so that a publisher may retry a call whose answer it never got."""
        violations = Violations()
        vehicle_id = canonical_vehicle_id(event.vehicle_id, violations, "event.vehicle_id")
        if event.change is None:
            violations.add("event.change", "one kind of change is required")
        check_value(event, "event", violations)
        violations.raise_if_any(reasons.FIELD_INVALID)
        vehicle = await existing_vehicle(self.store, vehicle_id)
        now = self.clock.now()
        complete = dataclasses.replace(
            event,
            id=event.id or str(uuid.uuid4()),
            vehicle_id=vehicle_id,
            fleet_id=vehicle.fleet_id,
            occur_time=event.occur_time if event.occur_time > EPOCH else now,
            publish_time=now,
            flow_id=event.flow_id or current_flow_id.get(),
        )
        if event.id:
            return await self.streams.publish_once(complete)
        return await self.streams.publish(complete), complete
