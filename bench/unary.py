"""The unary benchmarks: v2 ``GetVehicle`` and ``ListVehicles`` (a full page of 50) of the fleet "hamburg".

The demo scenario has 27 Hamburg vehicles, so each emulator (memory, and Redis on the private
``redis-server``) first gets more through the admin service (``CreateVehicle``, copies of a demo vehicle)
until the fleet has ``SEEDED_VEHICLES``. The baseline, ``servers.BareFleetState``, holds the vehicles the
memory emulator then answers with, as messages. Before each window one real gRPC call checks that the call
succeeds and records the size of its response (the same on every server, or the row says so); h2load then
drives the call against the baseline and each emulator in turn, each window after a warm-up of its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import grpc

from bench.cpu import Placement, Usage, UsageMeter
from bench.h2load import H2loadRun, run_h2load
from bench.load import CALL_TIMEOUT_SECONDS, Load
from bench.private_redis import flush, redis_server
from bench.report import Comparison, Measurement
from bench.servers import Running, run_bare_fleet_state, run_emulator, served
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2

MIN_THROUGHPUT_RATIO = 0.9
BACKENDS = ("memory", "redis")
V2_SERVICE = "/moia.fleet.state.v2.FleetStateService"
CREATE_VEHICLE = "/emulator.admin.v1.AdminService/CreateVehicle"
HAMBURG_VEHICLE_ID = "94d36e21-ca69-4a5b-b2b7-8068122e7362"  # one of the demo scenario's explicit vehicles
FLEET_ID = "hamburg"
PAGE_SIZE = 50
SEEDED_VEHICLES = 60  # more than a page, so the page is full and has a next-page token


@dataclass(frozen=True)
class UnaryCall:
    """One unary call as h2load sends it: the method path and the serialized request."""

    method: str
    request: bytes


UNARY_CALLS = {
    "GetVehicle v2": UnaryCall(
        f"{V2_SERVICE}/GetVehicle", v2.GetVehicleRequest(vehicle_id=HAMBURG_VEHICLE_ID).SerializeToString()
    ),
    f"ListVehicles v2, page of {PAGE_SIZE}": UnaryCall(
        f"{V2_SERVICE}/ListVehicles",
        v2.ListVehiclesRequest(fleet_id=FLEET_ID, page_size=PAGE_SIZE).SerializeToString(),
    ),
}


async def _list_all(channel: grpc.aio.Channel, fleet_id: str) -> tuple[list[v2.Vehicle], str]:
    """Every vehicle of the fleet, and the next-page token of the first page of ``PAGE_SIZE``."""
    list_vehicles = channel.unary_unary(
        f"{V2_SERVICE}/ListVehicles",
        v2.ListVehiclesRequest.SerializeToString,
        v2.ListVehiclesResponse.FromString,
    )
    vehicles: list[v2.Vehicle] = []
    first_token, token = None, ""
    while True:
        request = v2.ListVehiclesRequest(fleet_id=fleet_id, page_size=PAGE_SIZE, page_token=token)
        page = await list_vehicles(request, timeout=CALL_TIMEOUT_SECONDS, wait_for_ready=True)
        vehicles += page.vehicles
        first_token = page.next_page_token if first_token is None else first_token
        token = page.next_page_token
        if not token:
            return vehicles, first_token


async def seed(address: str) -> int:
    """Create copies of a demo Hamburg vehicle until the fleet has ``SEEDED_VEHICLES``; how many it has."""
    async with grpc.aio.insecure_channel(address) as channel:
        vehicles, _ = await _list_all(channel, FLEET_ID)
        create = channel.unary_unary(
            CREATE_VEHICLE,
            admin_pb2.CreateVehicleRequest.SerializeToString,
            admin_pb2.CreateVehicleResponse.FromString,
        )
        [model] = [v for v in vehicles if v.id == HAMBURG_VEHICLE_ID]
        for label in range(len(vehicles), SEEDED_VEHICLES):
            vehicle = v2.Vehicle()
            vehicle.CopyFrom(model)
            for name in ("id", "etag", "update_time"):
                vehicle.ClearField(name)
            vehicle.label = f"bench-{label}"
            await create(admin_pb2.CreateVehicleRequest(vehicle=vehicle), timeout=CALL_TIMEOUT_SECONDS)
        vehicles, _ = await _list_all(channel, FLEET_ID)
    return len(vehicles)


async def fleet_of(address: str) -> tuple[dict[str, list[bytes]], str]:
    """The Hamburg fleet as the server answers it (serialized vehicles) and its first page's next token."""
    async with grpc.aio.insecure_channel(address) as channel:
        vehicles, token = await _list_all(channel, FLEET_ID)
    return {FLEET_ID: [v.SerializeToString() for v in vehicles]}, token


async def response_size(address: str, call: UnaryCall) -> int:
    """Make ``call`` once with a real gRPC client (it must succeed); the size of the serialized response."""
    async with grpc.aio.insecure_channel(address) as channel:
        send = channel.unary_unary(call.method, request_serializer=None, response_deserializer=None)
        response: bytes = await send(call.request, timeout=CALL_TIMEOUT_SECONDS, wait_for_ready=True)
    return len(response)


def measure_call(
    address: str,
    call: UnaryCall,
    groups: Mapping[str, Sequence[int]],
    load: Load,
    where: Placement,
    connections: int | None = None,
) -> tuple[Measurement, H2loadRun, Usage]:
    """One h2load warm-up, then the measured window with the server side's CPU around it; a real gRPC
    call before each and after the window confirms that the call succeeds."""
    url = f"http://{address}{call.method}"
    size = asyncio.run(response_size(address, call))
    shape = (connections or load.connections, load.in_flight, where.load)
    run_h2load(url, call.request, size, load.warmup_seconds, *shape)
    size = asyncio.run(response_size(address, call))
    meter = UsageMeter(groups, where)
    meter.start()
    run = run_h2load(url, call.request, size, load.seconds, *shape)
    usage = replace(meter.stop(), load_cpu_seconds=run.cpu_seconds)
    asyncio.run(response_size(address, call))
    measured = Measurement.from_latencies(
        run.latencies_s, run.seconds, run.failures, operations=run.succeeded - run.grpc_failures, usage=usage
    )
    return measured, run, usage


def cpu_split(usage: Usage, operations: int) -> dict[str, float]:
    """Microseconds of CPU per operation of each group of server processes."""
    return {
        name: round(seconds / operations * 1e6, 1)
        for name, seconds in usage.cpu_seconds.items()
        if operations
    }


def run_unary_benchmarks(load: Load, where: Placement) -> list[Comparison]:
    """Per call in ``UNARY_CALLS``, one row per backend against the bare baseline."""
    rows = []
    with redis_server(where.server) as redis:
        flush(redis.url)
        with (
            served(run_emulator, "memory", redis.url, None, where.server) as memory,
            served(run_emulator, "redis", redis.url, None, where.server) as on_redis,
        ):
            sizes = {
                b: asyncio.run(seed(e.address)) for b, e in zip(BACKENDS, (memory, on_redis), strict=True)
            }
            fleets, token = asyncio.run(fleet_of(memory.address))
            emulators: dict[str, tuple[Running, dict[str, list[int]]]] = {
                "memory": (memory, {"emulator": [memory.pid]}),
                "redis": (on_redis, {"emulator": [on_redis.pid], "redis": [redis.pid]}),
            }
            with served(run_bare_fleet_state, fleets, token, where.server) as bare:
                for name, call in UNARY_CALLS.items():
                    baseline, base_run, _ = measure_call(
                        bare.address, call, {"bare": [bare.pid]}, load, where
                    )
                    for backend, (emulator, groups) in emulators.items():
                        measured, run, usage = measure_call(emulator.address, call, groups, load, where)
                        rows.append(
                            Comparison(
                                f"{name}, {backend}",
                                "calls/s",
                                measured,
                                baseline,
                                min_throughput_ratio=MIN_THROUGHPUT_RATIO,
                                details={
                                    "fleet_vehicles": sizes[backend],
                                    "cpu_us_per_call": cpu_split(usage, measured.operations),
                                    "response_bytes": {
                                        "emulator": run.response_bytes - 5,
                                        "baseline": base_run.response_bytes - 5,
                                    },
                                    "notes": [
                                        f"h2load emulator: {run.summary()}",
                                        f"h2load baseline: {base_run.summary()}",
                                    ],
                                },
                            )
                        )
    return rows
