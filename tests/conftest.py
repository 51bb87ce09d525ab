"""Shared fixtures: an in-process emulator on a free port and a channel to it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from fleet_emulator.server import Emulator, Settings


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """The emulator with the demo scenario, in this process, on a free port of 127.0.0.1."""
    emu = Emulator(Settings(host="127.0.0.1", port=0, grace_seconds=0.5))
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture
async def channel(emulator: Emulator) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{emulator.port}") as ch:
        yield ch
