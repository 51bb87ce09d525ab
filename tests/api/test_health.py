"""Health (grpc.health.v1): NOT_SERVING until the backend is ready, SERVING after, NOT_SERVING on stop."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc
from fleet_emulator.backends.base import Backend
from fleet_emulator.backends.factory import MemoryBackends
from fleet_emulator.backends.memory import MemoryStateStore
from fleet_emulator.backends.memory_control import MemoryControlStore
from fleet_emulator.backends.memory_events import MemoryEventLog, MemoryStateFeed
from fleet_emulator.server import Emulator, Settings
from tests.rich_errors import error_info

SERVICES = ["", "moia.fleet.state.v1beta4.FleetStateService", "moia.fleet.state.v2.FleetStateService"]


class SlowToStartStore(MemoryStateStore):
    """A memory store that answers once the test lets it."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = asyncio.Event()
        self.ready = asyncio.Event()

    async def ping(self) -> None:
        self.asked.set()
        await self.ready.wait()


class SlowBackends(MemoryBackends):
    """Memory backends whose default namespace has the slow store, which connecting waits for."""

    def __init__(self, store: SlowToStartStore) -> None:
        super().__init__()
        self.store = store

    def __call__(self, namespace: str) -> Backend:
        return Backend(self.store, MemoryEventLog(), MemoryStateFeed(), MemoryControlStore())

    async def connect(self, timeout_s: float) -> None:
        await self.store.ping()


async def statuses(channel: grpc.aio.Channel) -> list[str]:
    stub = health_pb2_grpc.HealthStub(channel)
    answers = [await stub.Check(health_pb2.HealthCheckRequest(service=s)) for s in SERVICES]
    return [health_pb2.HealthCheckResponse.ServingStatus.Name(a.status) for a in answers]


async def test_not_serving_until_the_backend_is_ready_then_serving_then_not_on_stop() -> None:
    store = SlowToStartStore()
    emulator = Emulator(Settings(host="127.0.0.1", port=0, grace_seconds=0.1), backends=SlowBackends(store))
    starting = asyncio.create_task(emulator.start())
    await store.asked.wait()  # the server is bound and started before it checks the backend
    async with grpc.aio.insecure_channel(f"127.0.0.1:{emulator.port}") as channel:
        await channel.channel_ready()
        assert await statuses(channel) == ["NOT_SERVING"] * 3
        store.ready.set()
        await starting
        assert await statuses(channel) == ["SERVING"] * 3
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        await emulator.stop()
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_on_stop_open_streams_end_at_once_with_unavailable_and_unary_calls_get_the_grace() -> None:
    emulator = Emulator(Settings(host="127.0.0.1", port=0, grace_seconds=30))
    await emulator.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{emulator.port}") as channel:
        api = fleet_state_pb2_grpc.FleetStateServiceStub(channel)
        stream = api.StreamVehicleEvents(pb.StreamRequest(event_id="fleets/hamburg/vehicle-events"))
        await stream.read()
        began = asyncio.get_running_loop().time()
        await emulator.stop()
        assert asyncio.get_running_loop().time() - began < 5, "no grace period for streams, which never end"
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await stream.read()
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(ended.value).reason == "EMULATOR_STOPPING"
