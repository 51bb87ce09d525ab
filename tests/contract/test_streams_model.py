"""Property test: random sequences of publish, resume from an id, poll and retention expiry give the same
answers on every backend as a plain reference model of a Redis stream with time-window retention."""

from __future__ import annotations

import asyncio
import bisect
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet_emulator.backends.factory import MemoryBackends, RedisBackends
from fleet_emulator.domain.clock import EmulatorClock
from fleet_emulator.domain.errors import EmulatorError
from fleet_emulator.domain.events import Event, LockChanged
from fleet_emulator.domain.message_ids import ZERO, MessageId
from fleet_emulator.domain.models import Fleet, LockState
from fleet_emulator.domain.streams import EventStreams, StreamSettings
from tests.redis_server import RedisServer

START = datetime(2026, 11, 22, 6, 0, tzinfo=UTC)
RETENTION = timedelta(seconds=60)
BATCH = 5
STREAM = "fleets/f/vehicle-events"

publish = st.tuples(st.just("publish"), st.integers(0, 3000))
expire = st.tuples(st.just("advance"), st.integers(10_000, 90_000))
resume_point = st.one_of(
    st.none(),
    st.integers(0, 40).map(lambda i: ("known", i)),
    st.tuples(st.just("raw"), st.integers(0, 2**42), st.integers(0, 3)),
)
poll = st.tuples(st.just("poll"), resume_point)
read = st.tuples(st.just("read"), resume_point, st.integers(1, 8))
operations = st.lists(st.one_of(publish, publish, expire, poll, read), min_size=1, max_size=40)


@dataclass
class Model:
    """A Redis stream with MINID retention, as API.md section 5 describes it, in plain Python."""

    now: datetime = START
    last: MessageId = ZERO
    entries: list[tuple[MessageId, MessageId, int]] = field(default_factory=list)

    def trim(self) -> None:
        keep_ms = int((self.now - RETENTION).timestamp() * 1000)
        self.entries = [e for e in self.entries if e[0].ms >= keep_ms]

    def publish(self, n: int) -> None:
        message_id = self.last.next_after(int(self.now.timestamp() * 1000))
        self.entries.append((message_id, self.last, n))
        self.last = message_id
        self.trim()

    def after(self, cursor: MessageId | None, limit: int) -> tuple[str, list[int], MessageId]:
        """('ok', event numbers, new position) or (reason, [], cursor) for a resume from ``cursor``."""
        self.trim()
        if cursor is None:
            return "ok", [], self.last
        if cursor > self.last:
            return "MESSAGE_ID_UNKNOWN", [], cursor
        ids = [e[0] for e in self.entries]
        following = self.entries[bisect.bisect_right(ids, cursor) :]
        if (following and following[0][1] > cursor) or (not following and cursor < self.last):
            return "MESSAGE_ID_EXPIRED", [], cursor
        taken = following[:limit]
        return "ok", [e[2] for e in taken], taken[-1][0] if taken else cursor


def event(n: int) -> Event:
    return Event(str(uuid.UUID(int=n + 1)), "v", "f", START, START, "", LockChanged(LockState.LOCKED))


def number(e: Event | None) -> int:
    assert e is not None
    return uuid.UUID(e.id).int - 1


async def run(ops: list[Any], backend_name: str, redis_url: str) -> None:
    backends = MemoryBackends() if backend_name == "memory" else RedisBackends(redis_url)
    backend = backends("")
    await backend.clear()
    await backend.state.put_fleet(Fleet("f", "F", "City", "UTC"))
    clock = EmulatorClock(START)
    streams = EventStreams(backend.events, backend.state, clock, StreamSettings(RETENTION, poll_batch=BATCH))
    model = Model()
    known: list[MessageId] = []
    published = 0
    try:
        for op in ops:
            if op[0] == "publish":
                await clock.advance(timedelta(milliseconds=op[1]))
                model.now = clock.now()
                known.append(await streams.publish(event(published)))
                model.publish(published)
                published += 1
            elif op[0] == "advance":
                await clock.advance(timedelta(milliseconds=op[1]))
                model.now = clock.now()
            else:
                cursor = _cursor(op[1], known)
                limit = BATCH if op[0] == "poll" else op[2]
                expected = model.after(cursor, limit)
                text = None if cursor is None else str(cursor)
                got = await (_poll(streams, text) if op[0] == "poll" else _read(streams, text, expected))
                assert got == expected, (op, got, expected)
    finally:
        await backend.close()
        await backends.close()


def _cursor(choice: Any, known: list[MessageId]) -> MessageId | None:
    if choice is None:
        return None
    if choice[0] == "known":
        return known[choice[1] % len(known)] if known else ZERO
    return MessageId(choice[1], choice[2])


async def _poll(streams: EventStreams, cursor: str | None) -> tuple[str, list[int], MessageId]:
    try:
        entries, position = await streams.poll(STREAM, cursor)
    except EmulatorError as error:
        return error.reason.name, [], MessageId.parse(cursor or "0-0")
    return "ok", [number(e.event) for e in entries], position


async def _read(
    streams: EventStreams, cursor: str | None, expected: tuple[str, list[int], MessageId]
) -> tuple[str, list[int], MessageId]:
    """Subscribe from ``cursor`` and read as many messages as the model says are there (never blocking)."""
    try:
        subscription = await streams.subscribe(STREAM, cursor)
    except EmulatorError as error:
        return error.reason.name, [], MessageId.parse(cursor or "0-0")
    got: list[int] = []
    position = MessageId.parse(cursor) if cursor else ZERO
    try:
        if cursor is None:
            _, position = await anext(subscription)
        for _ in expected[1]:
            entry, position = await asyncio.wait_for(anext(subscription), 5)
            got.append(number(entry.event if entry is not None else None))
    finally:
        await subscription.aclose()  # type: ignore[attr-defined]
    return "ok", got, position


@pytest.mark.parametrize("backend_name", ["memory", "redis"])
def test_backends_behave_like_the_reference_model(backend_name: str, redis_server: RedisServer) -> None:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(ops=operations)
    def check(ops: list[Any]) -> None:
        asyncio.run(run(ops, backend_name, redis_server.url))

    check()
