"""Shared tails on Redis (``backends/redis_tails.py``): one blocking reader per stream and process, on a
connection of its own that goes with the last subscriber; subscribers behind its window replay with
``XRANGE``; Redis lost mid-stream ends every subscriber with ``Unavailable`` and a resubscribe from the
last id loses nothing; a reset, here or by another replica, does not leave the reader at a stale head."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from fleet_emulator.backends.factory import RedisBackends
from fleet_emulator.backends.redis_events import RedisEventLog
from fleet_emulator.backends.redis_keys import RedisKeys
from fleet_emulator.backends.redis_tails import DecodedEntries, SharedTail
from fleet_emulator.domain.codec import encode
from fleet_emulator.domain.errors import Unavailable
from fleet_emulator.domain.events import LogEntry
from fleet_emulator.domain.message_ids import ZERO, MessageId
from tests.contract.test_event_log import FOREVER, T0, event
from tests.redis_server import RedisServer
from tests.waiting import DEADLINE_S, eventually

pytestmark = pytest.mark.redis

TAIL_NAME = "shared-tail"
KEY = RedisKeys().stream("s")


@asynccontextmanager
async def redis_log(url: str, window: int = 2_000, block_ms: int = 1_000) -> AsyncIterator[RedisEventLog]:
    """An event log whose shared tails name their connections, so that ``CLIENT LIST`` can count them."""
    backends = RedisBackends(url)

    async def connect(key: str) -> aioredis.Redis:
        return backends.new_event_client(single_connection_client=True, client_name=TAIL_NAME)

    log = RedisEventLog(backends.event_client, RedisKeys(), connect, window=window, block_ms=block_ms)
    try:
        yield log
    finally:
        await log.close()
        await backends.close()


@asynccontextmanager
async def admin(url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(url, decode_responses=True)
    try:
        yield client
    finally:
        await client.aclose()


async def tail_connections(client: aioredis.Redis) -> list[dict[str, Any]]:
    return [c for c in await client.client_list() if c.get("name") == TAIL_NAME]


async def xranges(client: aioredis.Redis) -> int:
    stats: Any = await client.info("commandstats")
    return int(stats.get("cmdstat_xrange", {}).get("calls", 0))


def shared_tail(log: RedisEventLog) -> SharedTail:
    return log._tails[KEY]


async def test_subscribers_of_a_stream_share_one_blocking_connection(redis_url: str) -> None:
    async with redis_log(redis_url) as log, admin(redis_url) as redis, contextlib.AsyncExitStack() as stack:
        start = await log.append("s", event(0), T0, FOREVER)
        tails = [await stack.enter_async_context(log.tail("s")) for _ in range(30)]
        others = [await stack.enter_async_context(log.tail("other")) for _ in range(5)]
        waits = [asyncio.create_task(t.wait(start, 10, wait_s=DEADLINE_S)) for t in tails]

        async def two_readers_blocked() -> bool:
            connections = await tail_connections(redis)
            return len(connections) == 2 and all(c["cmd"] in ("xread", "get") for c in connections)

        await eventually(two_readers_blocked, "one reader per stream blocks, for 35 subscribers of two")
        published = await log.append("s", event(1), T0, FOREVER)
        for got in await asyncio.wait_for(asyncio.gather(*waits), DEADLINE_S):
            assert [e.message_id for e in got] == [published]
        assert len(await tail_connections(redis)) == 2
        assert others  # still open: the second reader stays

        await stack.aclose()  # every subscriber goes: so do the readers and their connections

        async def no_reader() -> bool:
            return await tail_connections(redis) == []

        await eventually(no_reader, "the readers stopped with their last subscribers")
        assert log._tails == {}
        async with log.tail("s") as again:  # the next subscriber starts a reader again
            later = await log.append("s", event(2), T0, FOREVER)
            assert [e.message_id for e in await again.wait(published, 10, wait_s=DEADLINE_S)] == [later]
            assert len(await tail_connections(redis)) == 1


async def test_a_subscriber_at_the_head_is_answered_from_memory(redis_url: str) -> None:
    async with redis_log(redis_url) as log, admin(redis_url) as redis, log.tail("s") as tail:
        start = await log.last_id("s")
        first = await log.append("s", event(0), T0, FOREVER)
        assert [e.message_id for e in await tail.wait(start, 10, wait_s=DEADLINE_S)] == [first]
        ids = [await log.append("s", event(n), T0, FOREVER) for n in range(1, 6)]
        await eventually(lambda: _at(shared_tail(log), ids[-1]), "the reader has read the new entries")
        before = await xranges(redis)
        got = await tail.wait(first, 2, wait_s=DEADLINE_S)
        got += await tail.wait(got[-1].message_id, 10, wait_s=DEADLINE_S)
        assert [e.message_id for e in got] == ids
        assert await xranges(redis) == before, "entries inside the window come from memory"


async def _at(shared: SharedTail, head: MessageId) -> bool:
    return shared.head == head


async def test_a_subscriber_behind_the_window_replays_and_joins_it(redis_url: str) -> None:
    window = 8
    async with redis_log(redis_url, window=window) as log, admin(redis_url) as redis:
        old = [await log.append("s", event(n), T0, FOREVER) for n in range(20)]
        async with log.tail("s") as fast, log.tail("s") as slow:
            shared = shared_tail(log)
            await eventually(lambda: _at(shared, old[-1]), "the reader started at the last id")
            fast_cursor = slow_cursor = old[-1]
            fast_got: list[LogEntry] = []
            slow_got: list[LogEntry] = []
            new: list[MessageId] = []
            for burst in range(6):
                for n in range(13):
                    new.append(await log.append("s", event(100 + 13 * burst + n), T0, FOREVER))
                await eventually(lambda: _at(shared, new[-1]), "the reader caught up")
                assert shared.base is not None and len(shared) <= window, "the window never grows"
                while fast_cursor != new[-1]:
                    batch = await fast.wait(fast_cursor, 100, wait_s=DEADLINE_S)
                    fast_got += batch
                    fast_cursor = batch[-1].message_id
                behind = slow_cursor < shared.base
                xranges_before = await xranges(redis)
                batch = await slow.wait(slow_cursor, 3, wait_s=DEADLINE_S)  # takes 3 of 13 per burst
                replayed = await xranges(redis) - xranges_before
                assert replayed == (1 if behind else 0), (burst, behind, replayed)
                slow_got += batch
                slow_cursor = batch[-1].message_id
            base = shared.base
            assert base is not None
            assert any(e.message_id < base for e in slow_got), "the slow one fell behind the window"
            while slow_cursor != new[-1]:
                batch = await slow.wait(slow_cursor, 3, wait_s=DEADLINE_S)
                slow_got += batch
                slow_cursor = batch[-1].message_id
            assert [e.message_id for e in fast_got] == new
            assert [e.message_id for e in slow_got] == new
            assert [e.previous_id for e in slow_got] == [old[-1], *new[:-1]]

            from_start = await slow.wait(ZERO, 100, wait_s=DEADLINE_S)  # behind everything: XRANGE
            assert [e.message_id for e in from_start] == old + new


async def test_entries_appended_before_the_reader_starts_are_not_lost(redis_url: str) -> None:
    """A subscriber checks its start, then entries are appended, then its tail starts (at the last id by
    then): it replays them with XRANGE and joins the reader without a gap or a duplicate."""
    async with redis_log(redis_url) as log:
        await log.append("s", event(0), T0, FOREVER)
        cursor = await log.last_id("s")  # the subscriber's start check
        missed = [await log.append("s", event(n), T0, FOREVER) for n in range(1, 4)]
        async with log.tail("s") as tail:
            shared = shared_tail(log)
            await eventually(lambda: _at(shared, missed[-1]), "the reader started")
            assert shared.base == missed[-1] > cursor
            got = await tail.wait(cursor, 2, wait_s=DEADLINE_S)
            later = await log.append("s", event(4), T0, FOREVER)
            while got[-1].message_id != later:
                got += await tail.wait(got[-1].message_id, 10, wait_s=DEADLINE_S)
            assert [e.message_id for e in got] == [*missed, later]


async def test_subscribers_behind_at_one_cursor_share_one_replay(redis_url: str) -> None:
    async with redis_log(redis_url) as log, admin(redis_url) as redis, contextlib.AsyncExitStack() as stack:
        cursor = await log.append("s", event(0), T0, FOREVER)
        behind = [await log.append("s", event(n), T0, FOREVER) for n in range(1, 30)]
        tails = [await stack.enter_async_context(log.tail("s")) for _ in range(300)]
        await eventually(lambda: _at(shared_tail(log), behind[-1]), "the reader started after them")
        before = await xranges(redis)
        results = await asyncio.gather(*(t.wait(cursor, 100, wait_s=DEADLINE_S) for t in tails))
        assert all([e.message_id for e in got] == behind for got in results)
        assert await xranges(redis) - before == 1
        results[0].clear()  # each has a list of its own
        assert all(len(got) == len(behind) for got in results[1:])


async def test_a_thousand_subscribers_of_one_stream_get_every_event(redis_url: str) -> None:
    """1,000 subscribers (as many as the client's pool has connections) at one cursor; an entry appended
    before their reader starts puts them all behind it at once."""
    subscribers, events = 1_000, 50
    async with redis_log(redis_url) as log, admin(redis_url) as redis:
        start = await log.append("s", event(0), T0, FOREVER)
        published = [await log.append("s", event(1), T0, FOREVER)]
        ready = asyncio.Semaphore(0)

        async def subscriber() -> list[MessageId]:
            got: list[MessageId] = []
            cursor = start
            async with log.tail("s") as tail:
                ready.release()
                while len(got) < events:
                    for entry in await tail.wait(cursor, 100, wait_s=1.0):
                        got.append(entry.message_id)
                        cursor = entry.message_id
            return got

        before = await xranges(redis)
        readers = [asyncio.create_task(subscriber()) for _ in range(subscribers)]
        for _ in range(subscribers):
            await ready.acquire()
        for n in range(2, events + 1):
            published.append(await log.append("s", event(n), T0 + timedelta(milliseconds=n), FOREVER))
            if n % 10 == 0:
                await asyncio.sleep(0.01)  # in bursts: some waits are answered by the reader's wake-up
        assert len(await tail_connections(redis)) == 1
        results = await asyncio.wait_for(asyncio.gather(*readers), DEADLINE_S * 4)
        assert sum(len(r) for r in results) == subscribers * events
        assert all(r == published for r in results)
        assert await xranges(redis) - before <= 3, "the subscribers behind replayed together"


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_redis_lost_mid_stream_ends_every_subscriber_and_a_resubscribe_loses_nothing(
    own_redis: RedisServer, how: str
) -> None:
    async with redis_log(own_redis.url) as log:
        first = await log.append("s", event(0), T0, FOREVER)
        async with contextlib.AsyncExitStack() as stack:
            tails = [await stack.enter_async_context(log.tail("s")) for _ in range(10)]
            failed_tail = shared_tail(log)
            seen = await asyncio.gather(*(t.wait(ZERO, 10, wait_s=DEADLINE_S) for t in tails))
            assert all([e.message_id for e in got] == [first] for got in seen)
            waits = [asyncio.create_task(t.wait(first, 10, wait_s=DEADLINE_S * 2)) for t in tails]
            await asyncio.sleep(0)
            if how == "kill":
                assert own_redis.process is not None
                own_redis.process.kill()
                own_redis.process.wait(timeout=10)
            else:
                own_redis.stop()
            outcomes = await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), DEADLINE_S * 2)
            assert all(isinstance(o, Unavailable) for o in outcomes), outcomes
            with pytest.raises(Unavailable):
                await tails[0].wait(first, 10, wait_s=1)  # a failed tail stays failed
            own_redis.start()

            async def appended() -> bool:
                try:
                    missed.append(await log.append("s", event(len(missed) + 1), T0, FOREVER))
                except Unavailable:
                    return False
                return True

            missed: list[MessageId] = []
            await eventually(appended, "Redis answers again")
            async with log.tail("s") as resumed:  # while the failed tail is still held: a new reader
                assert shared_tail(log) is not failed_tail
                got = await resumed.wait(first, 10, wait_s=DEADLINE_S)
                assert [e.message_id for e in got] == missed
                assert [e.previous_id for e in got] == [first]
                after = await log.append("s", event(9), T0, FOREVER)
                assert [e.message_id for e in await resumed.wait(missed[-1], 10, DEADLINE_S)] == [after]


async def test_a_reset_restarts_the_reader_from_the_new_last_id(redis_url: str) -> None:
    """After ``clear`` ids start again lower (here the emulator's clock went back): a subscriber at the new
    last id gets the next entry at once, not when the reader's idle check would notice (it blocks 5 s)."""
    later = T0 + timedelta(hours=1)
    async with redis_log(redis_url, block_ms=5_000) as log, log.tail("s") as old:
        high = await log.append("s", event(0), later, FOREVER)
        assert [e.message_id for e in await old.wait(ZERO, 10, wait_s=DEADLINE_S)] == [high]
        await log.clear()
        low = await log.append("s", event(1), T0, FOREVER)
        assert low < high
        async with log.tail("s") as new:
            assert [e.message_id for e in await new.wait(ZERO, 10, wait_s=DEADLINE_S)] == [low]
            lower = await log.append("s", event(2), T0, FOREVER)
            got = await new.wait(low, 10, wait_s=2.0)
            assert [e.message_id for e in got] == [lower]


async def test_a_reset_by_another_replica_is_noticed(redis_url: str) -> None:
    """Another replica resets the namespace: this reader, blocked past the new ids, notices it when idle."""
    later = T0 + timedelta(hours=1)
    async with (
        redis_log(redis_url, block_ms=100) as log,
        redis_log(redis_url) as other,
        log.tail("s") as tail,
    ):
        high = await log.append("s", event(0), later, FOREVER)
        assert [e.message_id for e in await tail.wait(ZERO, 10, wait_s=DEADLINE_S)] == [high]
        await other.clear()
        low = await other.append("s", event(1), T0, FOREVER)
        cursor = await log.last_id("s")  # a new subscriber's start: inside the stale window's range
        assert cursor == low
        lower = await other.append("s", event(2), T0, FOREVER)
        got: list[LogEntry] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE_S
        while not got and loop.time() < deadline:
            got = await tail.wait(cursor, 10, wait_s=1.0)
        assert [e.message_id for e in got] == [lower]


async def test_closing_the_log_ends_the_waiting_subscribers(redis_url: str) -> None:
    async with redis_log(redis_url) as log, admin(redis_url) as redis, log.tail("s") as tail:
        start = await log.append("s", event(0), T0, FOREVER)
        waiting = asyncio.create_task(tail.wait(start, 10, wait_s=DEADLINE_S))
        await eventually(lambda: _connected(redis), "the reader is connected")
        await log.close()
        with pytest.raises(Unavailable):
            await asyncio.wait_for(waiting, DEADLINE_S)
        await eventually(lambda: _disconnected(redis), "the reader's connection is closed")


async def _connected(redis: aioredis.Redis) -> bool:
    return len(await tail_connections(redis)) == 1


async def _disconnected(redis: aioredis.Redis) -> bool:
    return await tail_connections(redis) == []


def test_the_decoded_entries_are_bounded_and_forget_the_oldest_first() -> None:
    entries = DecodedEntries(size=3)

    def raw(n: int) -> list[Any]:
        return [(f"{n}-0", {"event": json.dumps(encode(event(n))), "prev": "0-0"})]

    first = [entries.of(raw(n))[0] for n in range(5)]
    assert [e.event for e in first] == [event(n) for n in range(5)]
    assert len(entries._cache) == 3
    assert entries.of(raw(4))[0] is first[4], "a recent entry is decoded once"
    assert entries.of(raw(0))[0] is not first[0], "the oldest went first"
