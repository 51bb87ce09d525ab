"""Fixtures for the API tests that run on both backends: an emulator on a virtual clock, and its stubs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import grpc
import pytest

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc
from fleet_emulator.domain.clock import EmulatorClock
from fleet_emulator.server import Emulator, Settings

START = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


@dataclass
class Target:
    emulator: Emulator
    clock: EmulatorClock
    channel: grpc.aio.Channel
    api: fleet_state_pb2_grpc.FleetStateServiceAsyncStub
    admin: admin_pb2_grpc.AdminServiceAsyncStub


@pytest.fixture(params=["memory", "redis"])
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    """The demo emulator on each backend, its clock stopped at START, with v2 and admin stubs."""
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    clock = EmulatorClock(START)
    settings = Settings(
        host="127.0.0.1", port=0, backend=request.param, redis_url=redis_url, grace_seconds=0.2
    )
    emulator = Emulator(settings, clock=clock)
    await emulator.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{emulator.port}") as channel:
        yield Target(
            emulator,
            clock,
            channel,
            fleet_state_pb2_grpc.FleetStateServiceStub(channel),
            admin_pb2_grpc.AdminServiceStub(channel),
        )
    await emulator.stop()
