"""Durable event streams (API.md section 5): publish, replay-then-tail from a message id, and polling.

Every fleet has one durable stream of its vehicles' events; its ``event_id`` is ``vehicle_events_id``
(``fleets/<fleet_id>/vehicle-events``). A resume point is checked once, here, over the backend's
``EventLog``: newer than anything written is ``MESSAGE_ID_UNKNOWN``; if the first retained entry after it
names a predecessor newer than it, events in between were trimmed and it is ``MESSAGE_ID_EXPIRED``. The
same check runs on every batch while tailing, so a reader that falls behind the retention window learns it
instead of silently skipping events. A stream keeps at most ``StreamSettings.max_length`` entries, so that
its memory is bounded by configuration whatever the rate of events; the oldest beyond go as if expired.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleet_emulator.backends.base import EventLog, StateStore
from fleet_emulator.domain import reasons
from fleet_emulator.domain.access import check_fleet
from fleet_emulator.domain.background import keep_cancellation
from fleet_emulator.domain.clock import Clock
from fleet_emulator.domain.errors import NotFound, OutOfRange, Violations
from fleet_emulator.domain.events import Event, LogEntry
from fleet_emulator.domain.message_ids import MessageId
from fleet_emulator.domain.models import EPOCH
from fleet_emulator.telemetry import metrics

EVENT_ID = re.compile(r"fleets/([a-z0-9][a-z0-9-]{0,62})/vehicle-events")
DEFAULT_RETENTION = timedelta(hours=24)
MAX_LENGTH = 100_000  # entries a stream keeps at most, retention or not
POLL_BATCH = 100
REPLAY_BATCH = 500
WAIT_S = 1.0


def vehicle_events_id(fleet_id: str) -> str:
    return f"fleets/{fleet_id}/vehicle-events"


@dataclass(frozen=True)
class StreamSettings:
    retention: timedelta = DEFAULT_RETENTION
    max_length: int = MAX_LENGTH
    poll_batch: int = POLL_BATCH
    replay_batch: int = REPLAY_BATCH
    wait_s: float = WAIT_S


class EventStreams:
    def __init__(
        self, log: EventLog, store: StateStore, clock: Clock, settings: StreamSettings | None = None
    ) -> None:
        self.log = log
        self.store = store
        self.clock = clock
        self.settings = settings or StreamSettings()

    async def publish(self, event: Event) -> MessageId:
        now = self.clock.now()
        stream, keep_after = vehicle_events_id(event.fleet_id), self._keep_after(now)
        message_id = await self.log.append(stream, event, now, keep_after, self.settings.max_length)
        metrics.event_published()
        return message_id

    async def publish_once(self, event: Event) -> tuple[MessageId, Event]:
        """Publish an event unless one with its id is retained in the stream: then the message id and
        event it was published with (a publisher retrying a call whose answer it never got)."""
        now = self.clock.now()
        stream, keep_after = vehicle_events_id(event.fleet_id), self._keep_after(now)
        max_length = self.settings.max_length
        message_id, appended = await self.log.append_once(stream, event, now, keep_after, max_length)
        if appended:
            metrics.event_published()
            return message_id, event
        first = await self.log.read(stream, message_id.just_before(), 1)
        return message_id, first[0].event if first and first[0].message_id == message_id else event

    def _keep_after(self, now: datetime) -> datetime:
        """The start of the retention window (never before 1970: message ids count from there)."""
        return max(now - self.settings.retention, EPOCH)

    async def subscribe(
        self, event_id: str, last_message_id: str | None
    ) -> AsyncIterator[tuple[LogEntry | None, MessageId]]:
        """Check the request now (errors are raised here, before any message), then return the messages:
        the initial position (no entry) or the replay after ``last_message_id``, then live events."""
        cursor = await self._start(event_id, last_message_id)
        return self._follow(event_id, cursor, initial=last_message_id is None)

    async def _follow(
        self, event_id: str, cursor: MessageId, initial: bool
    ) -> AsyncIterator[tuple[LogEntry | None, MessageId]]:
        if initial:
            yield None, cursor
        async with self.log.tail(event_id) as tail:
            while True:  # a wait returns at once when entries follow the cursor: replay, then tail
                entries = await tail.wait(cursor, self.settings.replay_batch, self.settings.wait_s)
                keep_cancellation()  # a read may have swallowed the client's going away
                self._check_no_gap(cursor, entries)
                for entry in entries:
                    yield entry, entry.message_id
                    cursor = entry.message_id

    async def poll(self, event_id: str, last_message_id: str | None) -> tuple[list[LogEntry], MessageId]:
        """Without an id, no events and the current position; with one, the next batch after it."""
        cursor = await self._start(event_id, last_message_id)
        if last_message_id is None:
            return [], cursor
        entries = await self.log.read(event_id, cursor, self.settings.poll_batch)
        self._check_no_gap(cursor, entries)
        return entries, entries[-1].message_id if entries else cursor

    async def _start(self, event_id: str, last_message_id: str | None) -> MessageId:
        """Validate the request and return the cursor to read after."""
        violations = Violations()
        match = EVENT_ID.fullmatch(event_id)
        if not match:
            violations.add(
                "event_id", "must be a fleet's vehicle_events_id, e.g. fleets/hamburg/vehicle-events"
            )
        resume: MessageId | None = None
        if last_message_id is not None:
            try:
                resume = MessageId.parse(last_message_id)
            except ValueError as exc:
                violations.add("last_message_id", str(exc))
        violations.raise_if_any(reasons.FIELD_INVALID)
        assert match is not None
        check_fleet(match.group(1))
        if await self.store.get_fleet(match.group(1)) is None:
            raise NotFound(
                reasons.EVENT_STREAM_NOT_FOUND,
                f"event stream {event_id!r} does not exist",
                resource_type="event stream",
                resource_name=event_id,
                event_id=event_id,
            )
        await self.log.trim(event_id, self._keep_after(self.clock.now()))
        last = await self.log.last_id(event_id)
        if resume is None:
            return last
        if resume > last:
            raise OutOfRange(
                reasons.MESSAGE_ID_UNKNOWN,
                f"last_message_id {resume} is newer than the stream's last message {last}",
                last_message_id=str(resume),
                newest_message_id=str(last),
            )
        self._check_no_gap(resume, await self.log.read(event_id, resume, 1), last)
        return resume

    def _check_no_gap(
        self, cursor: MessageId, entries: list[LogEntry], last: MessageId | None = None
    ) -> None:
        """Raise ``MESSAGE_ID_EXPIRED`` when events right after ``cursor`` were trimmed."""
        if entries:
            if entries[0].previous_id <= cursor:
                return
            oldest = str(entries[0].message_id)
        elif last is None or last <= cursor:
            return
        else:
            oldest = ""  # everything after the cursor was trimmed: nothing is retained
        raise OutOfRange(
            reasons.MESSAGE_ID_EXPIRED,
            f"events after {cursor} are older than the retention window; resume without last_message_id",
            last_message_id=str(cursor),
            oldest_retained_message_id=oldest,
        )
