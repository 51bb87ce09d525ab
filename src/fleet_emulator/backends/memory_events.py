"""In-memory event log and state feed: the durable streams and live state fan-out of one process.

Each stream is a list of entries in id order with a bisect index, and a wake-up event that is replaced on
every append so that any number of tails can wait for "something after my cursor" without a task or a
queue of their own. The state feed is the local conflating fan-out (``fanout.py``) and nothing more.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime

from fleet_emulator.backends.event_bytes import encoded
from fleet_emulator.backends.fanout import LocalFanout, Subscription
from fleet_emulator.domain.events import Event, LogEntry
from fleet_emulator.domain.message_ids import ZERO, MessageId
from fleet_emulator.domain.models import Vehicle


def epoch_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


@dataclass
class _Stream:
    entries: list[LogEntry] = field(default_factory=list)
    ids: list[MessageId] = field(default_factory=list)
    last: MessageId = ZERO
    appended: asyncio.Event = field(default_factory=asyncio.Event)
    published: dict[str, MessageId] = field(default_factory=dict)  # event id -> message id, of append_once

    def trim(self, keep_after: datetime, max_length: int = 0) -> None:
        cut = bisect.bisect_left(self.ids, MessageId(epoch_ms(keep_after), 0))
        if max_length:
            cut = max(cut, len(self.ids) - max_length)
        del self.entries[:cut], self.ids[:cut]
        if self.published and cut:
            first = self.ids[0] if self.ids else self.last.next_after(0)
            self.published = {e: m for e, m in self.published.items() if m >= first}


class MemoryTail:
    """Waits on the stream's wake-up event: no task, queue or buffer of its own."""

    def __init__(self, log: MemoryEventLog, stream: str) -> None:
        self.log = log
        self.stream = stream

    async def wait(self, after: MessageId, limit: int, wait_s: float) -> list[LogEntry]:
        s = self.log._stream(self.stream)
        if s.last <= after:
            try:
                async with asyncio.timeout(wait_s):
                    await s.appended.wait()
            except TimeoutError:
                return []
        return await self.log.read(self.stream, after, limit)


class MemoryEventLog:
    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}

    def _stream(self, name: str) -> _Stream:
        return self._streams.setdefault(name, _Stream())

    async def append(
        self, stream: str, event: Event, now: datetime, keep_after: datetime, max_length: int = 0
    ) -> MessageId:
        s = self._stream(stream)
        message_id = s.last.next_after(epoch_ms(now))
        s.entries.append(LogEntry(message_id, s.last, event, encoded(event)))
        s.ids.append(message_id)
        s.last = message_id
        s.trim(keep_after, max_length)
        s.appended.set()
        s.appended = asyncio.Event()
        return message_id

    async def append_once(
        self, stream: str, event: Event, now: datetime, keep_after: datetime, max_length: int = 0
    ) -> tuple[MessageId, bool]:
        s = self._stream(stream)
        s.trim(keep_after, max_length)
        known = s.published.get(event.id)
        if known is not None:
            return known, False
        message_id = s.published[event.id] = await self.append(stream, event, now, keep_after, max_length)
        return message_id, True

    async def read(self, stream: str, after: MessageId, limit: int) -> list[LogEntry]:
        s = self._stream(stream)
        start = bisect.bisect_right(s.ids, after)
        return s.entries[start : start + limit]

    @asynccontextmanager
    async def tail(self, stream: str) -> AsyncIterator[MemoryTail]:
        yield MemoryTail(self, stream)

    async def last_id(self, stream: str) -> MessageId:
        return self._stream(stream).last

    async def trim(self, stream: str, keep_after: datetime) -> None:
        self._stream(stream).trim(keep_after)

    async def clear(self) -> None:
        self._streams.clear()

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class MemoryStateFeed:
    def __init__(self) -> None:
        self.fanout = LocalFanout()

    async def publish(self, vehicle: Vehicle) -> None:
        self.fanout.deliver(vehicle)

    @asynccontextmanager
    async def subscribe(self, fleet_id: str, vehicle_ids: Iterable[str] = ()) -> AsyncIterator[Subscription]:
        with self.fanout.subscription(fleet_id, vehicle_ids) as subscription:
            yield subscription

    async def close(self) -> None:
        return None
