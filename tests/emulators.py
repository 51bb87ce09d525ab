"""Emulators in the test process for tests that need one of their own, e.g. on a Redis they stop and start."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from fleet_emulator.server import Emulator, Settings


@asynccontextmanager
async def on_redis(redis_url: str) -> AsyncIterator[tuple[Emulator, grpc.aio.Channel]]:
    """The demo emulator on ``redis_url``, checking Redis every 0.1 s, and a channel to it."""
    settings = Settings(
        host="127.0.0.1",
        port=0,
        backend="redis",
        redis_url=redis_url,
        grace_seconds=0.2,
        health_interval_s=0.1,
    )
    emulator = Emulator(settings)
    await emulator.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{emulator.port}") as channel:
            yield emulator, channel
    finally:
        await emulator.stop()
