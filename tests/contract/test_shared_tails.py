"""Many subscribers of one stream, at different cursors, while events are appended: each gets exactly the
entries after its cursor, in order, with no gap and no duplicate (API.md section 5), on every backend."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from fleet_emulator.backends.base import EventLog
from fleet_emulator.domain.message_ids import ZERO, MessageId
from tests.contract.test_event_log import FOREVER, T0, event

SUBSCRIBERS = 50
BEFORE = 300  # entries there before the subscribers start
DURING = 2_000  # entries appended while they read
DEADLINE_S = 60.0


async def test_many_subscribers_at_different_cursors_each_get_exactly_what_follows(events: EventLog) -> None:
    rng = random.Random(7)
    ids = [ZERO]  # ids[n] is the n-th entry's id; ZERO stands before the first
    for n in range(BEFORE):
        ids.append(await events.append("s", event(n), T0 + timedelta(milliseconds=n // 3), FOREVER))
    cursors = [ids[0], ids[1], ids[BEFORE // 2], ids[BEFORE - 7], ids[BEFORE]]  # start, middle, head
    starts = [cursors[i % len(cursors)] for i in range(SUBSCRIBERS)]
    appended_all = asyncio.Event()
    got: dict[int, list[MessageId]] = {}

    async def subscriber(number: int, cursor: MessageId) -> None:
        limit = (3, 50, 500)[number % 3]
        slow = number % 5 == 0
        received = got.setdefault(number, [])
        async with events.tail("s") as tail:
            while not (appended_all.is_set() and cursor == ids[-1]):
                batch = await tail.wait(cursor, limit, wait_s=0.2)
                assert len(batch) <= limit
                for entry in batch:
                    received.append(entry.message_id)
                    cursor = entry.message_id
                    if slow:
                        await asyncio.sleep(0)  # lets the publisher run ahead of this one

    async def publisher() -> None:
        n = BEFORE
        while n < BEFORE + DURING:
            burst = rng.randint(1, 120)
            for _ in range(min(burst, BEFORE + DURING - n)):
                when = T0 + timedelta(milliseconds=n // 3)
                ids.append(await events.append("s", event(n), when, FOREVER))
                n += 1
            for _ in range(rng.randint(0, 3)):
                await asyncio.sleep(0)  # the subscribers read between bursts, sometimes at the head
        appended_all.set()

    readers = [asyncio.create_task(subscriber(i, start)) for i, start in enumerate(starts)]
    await asyncio.sleep(0)  # every subscriber opens its tail before the first burst
    await asyncio.wait_for(asyncio.gather(publisher(), *readers), DEADLINE_S)

    assert len(ids) == 1 + BEFORE + DURING
    assert ids == sorted(set(ids)), "the log's ids are unique and increasing"
    for number, start in enumerate(starts):
        expected = ids[ids.index(start) + 1 :]
        assert got[number] == expected, f"subscriber {number} from {start}: gap, duplicate or disorder"


async def test_subscribers_that_come_and_go_miss_nothing(events: EventLog) -> None:
    """Tails opened after an append, alone (the shared reader starts and stops each time) or while another
    subscriber reads, get the entry; the long-lived subscriber gets every entry once."""
    ids = [await events.append("s", event(0), T0, FOREVER)]
    steady_got: list[MessageId] = []
    done = asyncio.Event()

    async def steady() -> None:
        cursor = ids[0]
        async with events.tail("s") as tail:
            while not (done.is_set() and cursor == ids[-1]):
                for entry in await tail.wait(cursor, 100, wait_s=0.2):
                    steady_got.append(entry.message_id)
                    cursor = entry.message_id

    reader: asyncio.Task[None] | None = None
    for round_ in range(1, 21):
        if round_ == 11:
            reader = asyncio.create_task(steady())
        cursor = await events.last_id("s")
        ids.append(await events.append("s", event(round_), T0, FOREVER))
        async with events.tail("s") as tail:  # opened after the append: must still get it
            batch = await tail.wait(cursor, 10, wait_s=5)
        assert [e.message_id for e in batch] == [ids[-1]]
    done.set()
    assert reader is not None
    await asyncio.wait_for(reader, DEADLINE_S)
    assert steady_got == ids[1:]
