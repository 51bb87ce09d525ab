"""Raw Redis rates for context, measured with redis-py asyncio on the benchmarks' private Redis.

XADD appends entries with the fields the Redis backend writes (copied, as bytes, from the stream the replay
benchmark filled), ``publish_in_flight`` calls at a time like the
publisher; XRANGE reads that whole stream back in batches of the emulator's replay batch size, each
starting after the last id read, as the emulator's replay does. Rows have no baseline and no bar.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import redis.asyncio as aioredis

from bench.load import StreamLoad
from bench.report import Comparison, Measurement
from bench.stream_servers import EVENT_ID
from fleet_emulator.backends.redis_keys import RedisKeys
from fleet_emulator.domain.streams import REPLAY_BATCH

XADD_KEY = "bench:xadd"


def measure_redis(redis_url: str, streams: StreamLoad) -> list[Comparison]:
    """An XADD row and an XRANGE row; the replay benchmark must have left its stream in this Redis."""
    return asyncio.run(_measure(redis_url, streams))


async def _measure(redis_url: str, streams: StreamLoad) -> list[Comparison]:
    client = aioredis.Redis.from_url(redis_url)  # bytes: the backend's fields need not be text
    try:
        key = RedisKeys().stream(EVENT_ID)
        first: Any = await client.xrange(key, count=1)  # redis-py types replies loosely
        [(_, fields)] = first
        payload = sum(len(name) + len(value) for name, value in fields.items())
        writes, reads = await _xadd(client, fields, streams), await _xrange(client, key)
    finally:
        await client.aclose()
    in_flight = streams.publish_in_flight
    return [
        Comparison(f"redis XADD {payload} B, {in_flight} in flight", "entries/s", writes),
        Comparison(f"redis XRANGE {reads.operations:,} entries by {REPLAY_BATCH}", "entries/s", reads),
    ]


async def _xadd(client: aioredis.Redis, fields: dict[Any, Any], streams: StreamLoad) -> Measurement:
    """``streams.redis_writes`` XADDs of ``fields``; latencies per call."""
    writes = iter(range(streams.redis_writes))
    started = time.perf_counter()
    per_caller = await asyncio.gather(
        *(_add(client, fields, writes) for _ in range(streams.publish_in_flight))
    )
    seconds = time.perf_counter() - started
    await client.delete(XADD_KEY)
    return Measurement.from_latencies([lat for lats in per_caller for lat in lats], seconds, errors=0)


async def _add(client: aioredis.Redis, fields: dict[Any, Any], writes: Iterator[int]) -> list[float]:
    latencies = []
    for _ in writes:
        sent = time.perf_counter()
        await client.xadd(XADD_KEY, fields)
        latencies.append(time.perf_counter() - sent)
    return latencies


async def _xrange(client: aioredis.Redis, key: str) -> Measurement:
    """Every entry of ``key``, ``REPLAY_BATCH`` at a time; latencies per batch, operations per entry."""
    latencies, entries, after = [], 0, "-"
    started = time.perf_counter()
    while True:
        sent = time.perf_counter()
        batch: Any = await client.xrange(key, after, "+", count=REPLAY_BATCH)
        latencies.append(time.perf_counter() - sent)
        if not batch:
            break
        entries += len(batch)
        last = batch[-1][0]
        after = f"({last.decode() if isinstance(last, bytes) else last}"
    seconds = time.perf_counter() - started
    return Measurement.from_latencies(latencies, seconds, errors=0, operations=entries)
