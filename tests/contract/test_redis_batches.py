"""Batched Redis commands (``redis_batches.py``): concurrent reads share round trips, yet every read is sent
after it was asked, so it sees every write made before; a failed or cancelled caller leaves the others alone.
The ``Batcher`` tests drive a flush that waits on the test's word; the ``CoalescedReads`` tests use a real
redis-server (its own, for the restart)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis

from fleet_emulator.backends.factory import CLIENT_SETTINGS
from fleet_emulator.backends.redis_batches import Batcher, CoalescedReads
from tests.redis_server import RedisServer


class HeldFlush:
    """A flush that records each batch and returns only when the test releases it."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.release = asyncio.Event()
        self.started = asyncio.Event()

    async def __call__(self, items: Sequence[str]) -> list[str | Exception]:
        self.batches.append(list(items))
        self.started.set()
        await self.release.wait()
        self.release.clear()
        return [ValueError(item) if item.startswith("bad") else item.upper() for item in items]


async def test_what_is_submitted_during_a_round_trip_waits_for_the_next_one() -> None:
    flush = HeldFlush()
    batcher: Batcher[str, str] = Batcher(flush)
    first = [asyncio.create_task(batcher.submit(x)) for x in ("a", "b")]
    await flush.started.wait()
    later = [asyncio.create_task(batcher.submit(x)) for x in ("c", "d", "e")]
    await asyncio.sleep(0)  # let them queue
    assert flush.batches == [["a", "b"]]
    flush.started.clear()
    flush.release.set()
    assert await asyncio.gather(*first) == ["A", "B"]
    await flush.started.wait()
    flush.release.set()
    assert await asyncio.gather(*later) == ["C", "D", "E"]
    assert flush.batches == [["a", "b"], ["c", "d", "e"]]


async def test_a_failed_item_or_a_cancelled_caller_leaves_the_others_alone() -> None:
    flush = HeldFlush()
    batcher: Batcher[str, str] = Batcher(flush)
    calls = {x: asyncio.create_task(batcher.submit(x)) for x in ("a", "bad", "c")}
    await flush.started.wait()
    calls["c"].cancel()
    flush.release.set()
    assert await calls["a"] == "A"
    with pytest.raises(ValueError, match="bad"):
        await calls["bad"]
    with pytest.raises(asyncio.CancelledError):
        await calls["c"]
    flush.started.clear()
    next_call = asyncio.create_task(batcher.submit("f"))
    await flush.started.wait()
    flush.release.set()
    assert await next_call == "F"


async def test_a_batch_that_fails_gives_every_caller_the_error() -> None:
    async def broken(items: Sequence[str]) -> list[str | Exception]:
        raise ConnectionError("gone")

    batcher: Batcher[str, str] = Batcher(broken)
    outcomes = await asyncio.gather(*(batcher.submit(x) for x in "abc"), return_exceptions=True)
    assert [type(o) for o in outcomes] == [ConnectionError] * 3


async def _calls_of(client: aioredis.Redis, command: str) -> int:
    stats: dict[str, Any] = await client.info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, **CLIENT_SETTINGS)
    yield client
    await client.aclose()


async def test_concurrent_reads_of_one_key_share_a_round_trip(client: aioredis.Redis) -> None:
    await client.set("batches:key", "v1")
    await client.hset("batches:hash", "f", "h1")
    reads = CoalescedReads(client)
    before = await _calls_of(client, "get"), await _calls_of(client, "hget")
    got = await asyncio.gather(
        *(reads.read("GET", "batches:key") for _ in range(50)),
        *(reads.read("HGET", "batches:hash", "f") for _ in range(50)),
    )
    assert got == ["v1"] * 50 + ["h1"] * 50
    after = await _calls_of(client, "get"), await _calls_of(client, "hget")
    assert after == (before[0] + 1, before[1] + 1)


async def test_a_read_asked_after_a_write_sees_it_while_an_earlier_read_is_on_its_way(
    client: aioredis.Redis, redis_url: str
) -> None:
    await client.set("batches:seen", "old")
    reads = CoalescedReads(client)
    writer = aioredis.Redis.from_url(redis_url, **CLIENT_SETTINGS)
    try:
        for _ in range(20):
            await writer.set("batches:seen", "old")
            early = asyncio.create_task(reads.read("GET", "batches:seen"))
            await asyncio.sleep(0)
            assert reads.queued == 1, "the early read waits for its round trip"
            for _ in range(3):  # the round trip lets the calls ready to run join first
                await asyncio.sleep(0)
            assert (reads.queued, early.done()) == (0, False), "its round trip took it and is on its way"
            await writer.set("batches:seen", "new")
            assert await reads.read("GET", "batches:seen") == "new"
            assert await early in ("old", "new")
    finally:
        await writer.aclose()


async def test_reads_go_on_after_redis_restarted(own_redis: RedisServer) -> None:
    client = aioredis.Redis.from_url(own_redis.url, **CLIENT_SETTINGS)
    reads = CoalescedReads(client)
    try:
        await asyncio.gather(*(client.get(f"warm:{n}") for n in range(5)))  # pooled connections
        own_redis.stop()
        own_redis.start()
        assert await reads.read("GET", "after-restart") is None, "a stale connection is tried once more"
        both = await asyncio.gather(reads.read("GET", "a"), reads.read("GET", "b"))
        assert list(both) == [None, None]
    finally:
        await client.aclose()
