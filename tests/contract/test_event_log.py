"""The event-log contract (durable streams), run against every backend."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from fleet_emulator.backends.base import EventLog
from fleet_emulator.domain.events import Event, LockChanged
from fleet_emulator.domain.message_ids import ZERO, MessageId
from fleet_emulator.domain.models import LockState

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
FOREVER = datetime(1970, 1, 1, tzinfo=UTC)


def event(n: int = 0) -> Event:
    lock = LockState.LOCKED if n % 2 else LockState.UNLOCKED
    return Event(str(uuid.UUID(int=n)), "vehicle", "fleet", T0, T0, f"flow-{n}", LockChanged(lock))


async def test_ids_follow_the_clock_and_never_go_back(events: EventLog) -> None:
    first = await events.append("s", event(1), T0, FOREVER)
    same_ms = await events.append("s", event(2), T0, FOREVER)
    earlier = await events.append("s", event(3), T0 - timedelta(seconds=5), FOREVER)
    later = await events.append("s", event(4), T0 + timedelta(milliseconds=7), FOREVER)
    assert [first, same_ms, earlier, later] == [
        MessageId(T0_MS, 0),
        MessageId(T0_MS, 1),
        MessageId(T0_MS, 2),
        MessageId(T0_MS + 7, 0),
    ]
    assert await events.last_id("s") == later
    assert await events.last_id("other") == ZERO


async def test_read_after_is_exclusive_ordered_and_limited(events: EventLog) -> None:
    ids = [await events.append("s", event(n), T0 + timedelta(milliseconds=n), FOREVER) for n in range(10)]
    got = await events.read("s", ids[2], 4)
    assert [e.message_id for e in got] == ids[3:7]
    assert [e.event for e in got] == [event(n) for n in range(3, 7)]
    assert [e.previous_id for e in got] == ids[2:6]
    assert (await events.read("s", ZERO, 100))[0].previous_id == ZERO
    assert await events.read("s", ids[-1], 10) == []
    assert await events.read("nothing-here", ZERO, 10) == []


async def test_a_length_limit_keeps_only_the_newest_entries(events: EventLog) -> None:
    ids = [
        await events.append("s", event(n), T0 + timedelta(seconds=n), FOREVER, max_length=3) for n in range(7)
    ]
    retained = await events.read("s", ZERO, 100)
    assert [e.message_id for e in retained] == ids[4:]
    assert retained[0].previous_id == ids[3], "a gap shows, as after retention"
    assert await events.last_id("s") == ids[-1]


async def test_retention_trims_by_time_but_keeps_the_last_id(events: EventLog) -> None:
    ids = [await events.append("s", event(n), T0 + timedelta(seconds=n), FOREVER) for n in range(5)]
    await events.append("s", event(5), T0 + timedelta(seconds=5), keep_after=T0 + timedelta(seconds=3))
    retained = await events.read("s", ZERO, 100)
    assert [e.event.id for e in retained] == [event(n).id for n in (3, 4, 5)]
    assert retained[0].previous_id == ids[2], "the first retained entry still names its trimmed predecessor"
    await events.trim("s", T0 + timedelta(hours=1))
    assert await events.read("s", ZERO, 100) == []
    assert (await events.last_id("s")).ms == T0_MS + 5000


async def test_a_waiting_reader_wakes_up_for_the_next_entry(events: EventLog) -> None:
    start = await events.append("s", event(0), T0, FOREVER)
    async with events.tail("s") as tail:
        reader = asyncio.create_task(tail.wait(start, 10, wait_s=5))
        await asyncio.sleep(0.05)  # let the reader block; the append below must wake it, not the time-out
        assert not reader.done()
        published = await events.append("s", event(1), T0, FOREVER)
        got = await asyncio.wait_for(reader, 4)
    assert [e.message_id for e in got] == [published]


async def test_a_waiting_reader_times_out_empty(events: EventLog) -> None:
    start = await events.append("s", event(0), T0, FOREVER)
    async with events.tail("s") as tail:
        assert await tail.wait(start, 10, wait_s=0.05) == []
        second = await events.append("s", event(1), T0, FOREVER)
        assert [e.message_id for e in await tail.wait(start, 10, wait_s=5)] == [second], "no wait when there"


async def test_clear_forgets_streams(events: EventLog) -> None:
    await events.append("s", event(0), T0, FOREVER)
    await events.clear()
    assert await events.read("s", ZERO, 10) == []
    assert await events.last_id("s") == ZERO


async def test_an_event_appended_once_is_not_appended_again_while_retained(events: EventLog) -> None:
    first, appended = await events.append_once("s", event(1), T0, FOREVER)
    assert appended
    await events.append("s", event(2), T0 + timedelta(seconds=1), FOREVER)
    again = await events.append_once("s", event(1), T0 + timedelta(seconds=2), FOREVER)
    assert again == (first, False)
    assert [e.event.id for e in await events.read("s", ZERO, 10)] == [event(1).id, event(2).id]
    keep_after = T0 + timedelta(milliseconds=500)  # its first entry went with the retention window
    later, appended_later = await events.append_once("s", event(1), T0 + timedelta(seconds=3), keep_after)
    assert appended_later and later > first


async def test_of_concurrent_appends_of_one_event_id_one_appends(events: EventLog) -> None:
    outcomes = await asyncio.gather(*(events.append_once("s", event(7), T0, FOREVER) for _ in range(10)))
    assert [appended for _, appended in outcomes].count(True) == 1
    assert len({message_id for message_id, _ in outcomes}) == 1
    assert len(await events.read("s", ZERO, 100)) == 1
