"""The servers under test, each in its own spawned process, on uvloop: the emulator and the bare baselines.

``served`` starts a server process, learns its port through a pipe and waits until the gRPC health check
answers SERVING; it yields the address and the process id (for its CPU time). Leaving the block closes the
pipe, which tells the server to stop gracefully; a server whose parent vanished sees the pipe close too, and
every server stops by itself after ``MAX_SERVE_SECONDS``. Each server first pins itself to the cores it is
given (``bench.cpu``) and runs on uvloop, as ``fleet-emulator serve`` does by default. The emulator runs on
either backend, optionally prepared (e.g. prefilled) before it reports its port.

``BareFleetState`` is the unary baseline: v2 ``GetVehicle`` and ``ListVehicles`` over vehicles held as
``v2.Vehicle`` messages (the emulator's own, as it answered them), looked up per call, each answer built as a
new response message and serialized by grpc per call, like any servicer: no interceptor, no storage, no
conversion. It sends the response headers a client of the emulator gets, since they are part of what the
client sees: the contract's ``x-flow-id`` (a new id per call, made as the emulator makes it), before the
answer, as the emulator sends them. ``ListVehicles`` answers the first ``page_size`` vehicles of the fleet,
with the emulator's next-page token when more follow (the benchmark only asks for the first page).
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, TypeVar

import grpc
import uvloop
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.cpu import pin
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from fleet_emulator.domain.flow import FLOW_ID_HEADER, new_flow_id
from fleet_emulator.server import Emulator, Settings

HOST = "127.0.0.1"
SPAWN = multiprocessing.get_context("spawn")
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
MAX_SERVE_SECONDS = 1800.0
SERVING = health_pb2.HealthCheckResponse.SERVING
V2_SERVICE = "moia.fleet.state.v2.FleetStateService"
T = TypeVar("T")


@dataclass(frozen=True)
class Running:
    """A server process that answers: its address and its pid."""

    address: str
    pid: int


@contextmanager
def served(
    server_main: Callable[..., None], *args: object, ready_timeout: float = READY_TIMEOUT_SECONDS
) -> Iterator[Running]:
    """Run ``server_main(pipe, *args)`` in a spawned process; yield it once its health is SERVING.
    The server has ``ready_timeout`` seconds to report its port (longer when it is prefilled first)."""
    parent_end, child_end = SPAWN.Pipe()
    process = SPAWN.Process(target=server_main, args=(child_end, *args), name=server_main.__name__)
    process.start()
    child_end.close()
    try:
        if not parent_end.poll(ready_timeout):
            raise TimeoutError(f"{process.name} did not report a port within {ready_timeout}s")
        address = f"{HOST}:{parent_end.recv()}"
        asyncio.run(wait_until_serving(address))
        assert process.pid is not None
        yield Running(address, process.pid)
    finally:
        parent_end.close()
        process.join(STOP_TIMEOUT_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()


@contextmanager
def serving(
    server_main: Callable[..., None], *args: object, ready_timeout: float = READY_TIMEOUT_SECONDS
) -> Iterator[str]:
    """``served``, yielding the address only."""
    with served(server_main, *args, ready_timeout=ready_timeout) as running:
        yield running.address


async def wait_until_serving(address: str, within: float = READY_TIMEOUT_SECONDS) -> None:
    """Ask Health/Check until the server says SERVING, for at most ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    async with grpc.aio.insecure_channel(address) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        while loop.time() < deadline:
            request = health_pb2.HealthCheckRequest()
            try:
                reply = await check(request, timeout=within, wait_for_ready=True)
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
            else:
                if reply.status == SERVING:
                    return
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{address} did not become SERVING within {within}s")


def run_on_uvloop(main: Coroutine[Any, Any, T], cores: Collection[int] = ()) -> T:
    """Pin to ``cores`` (when given), then run ``main`` on uvloop."""
    pin(cores)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def _report_port_and_serve(pipe: Connection, port: int) -> None:
    """Tell the parent the port, then serve until it closes the pipe (or goes away) or time runs out."""
    pipe.send(port)
    await asyncio.to_thread(pipe.poll, MAX_SERVE_SECONDS)


Prepare = Callable[[Emulator], Awaitable[None]]


def run_emulator(
    pipe: Connection,
    backend: str = "memory",
    redis_url: str = Settings.redis_url,
    prepare: Prepare | None = None,
    cores: Collection[int] = (),
) -> None:
    """Process entry point: the emulator with the bundled demo scenario on a free loopback port, on
    ``backend``; ``prepare`` (a picklable function) runs once it has started, before it reports its port."""
    settings = Settings(host=HOST, port=0, backend=backend, redis_url=redis_url, grace_seconds=1.0)
    run_on_uvloop(_serve_emulator(pipe, settings, prepare), cores)


async def _serve_emulator(pipe: Connection, settings: Settings, prepare: Prepare | None) -> None:
    emulator = Emulator(settings)
    try:
        port = await emulator.start()
        if prepare is not None:
            await prepare(emulator)
        await _report_port_and_serve(pipe, port)
    finally:
        await emulator.stop()


async def serve_bare(pipe: Connection, handlers: Sequence[grpc.GenericRpcHandler[Any, Any]]) -> None:
    """A bare ``grpc.aio`` server with ``handlers`` and health, until the parent closes ``pipe``."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(tuple(handlers))
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(f"{HOST}:0")
    await server.start()
    await health_servicer.set("", SERVING)
    await _report_port_and_serve(pipe, port)
    await server.stop(1.0)


class BareFleetState:
    """v2 GetVehicle and ListVehicles over ``fleets`` (serialized ``v2.Vehicle`` lists by fleet id)."""

    def __init__(self, fleets: Mapping[str, Sequence[bytes]], next_page_token: str) -> None:
        self.fleets = {
            fleet: [v2.Vehicle.FromString(v) for v in vehicles] for fleet, vehicles in fleets.items()
        }
        self.vehicles = {vehicle.id: vehicle for vehicles in self.fleets.values() for vehicle in vehicles}
        self.next_page_token = next_page_token

    async def get_vehicle(self, request: v2.GetVehicleRequest, context: Any) -> v2.GetVehicleResponse:
        await context.send_initial_metadata(((FLOW_ID_HEADER, new_flow_id()),))
        vehicle = self.vehicles.get(request.vehicle_id)
        if vehicle is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"vehicle {request.vehicle_id!r} not found")
        return v2.GetVehicleResponse(vehicle=vehicle)

    async def list_vehicles(self, request: v2.ListVehiclesRequest, context: Any) -> v2.ListVehiclesResponse:
        await context.send_initial_metadata(((FLOW_ID_HEADER, new_flow_id()),))
        if request.fleet_id not in self.fleets:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"fleet {request.fleet_id!r} not found")
        vehicles = self.fleets[request.fleet_id]
        size = request.page_size or 50
        token = self.next_page_token if len(vehicles) > size else ""
        return v2.ListVehiclesResponse(vehicles=vehicles[:size], next_page_token=token)

    def handlers(self) -> tuple[grpc.GenericRpcHandler[Any, Any], ...]:
        methods = {
            "GetVehicle": grpc.unary_unary_rpc_method_handler(
                self.get_vehicle,
                request_deserializer=v2.GetVehicleRequest.FromString,
                response_serializer=v2.GetVehicleResponse.SerializeToString,
            ),
            "ListVehicles": grpc.unary_unary_rpc_method_handler(
                self.list_vehicles,
                request_deserializer=v2.ListVehiclesRequest.FromString,
                response_serializer=v2.ListVehiclesResponse.SerializeToString,
            ),
        }
        return (grpc.method_handlers_generic_handler(V2_SERVICE, methods),)


def run_bare_fleet_state(
    pipe: Connection, fleets: Mapping[str, Sequence[bytes]], next_page_token: str, cores: Collection[int] = ()
) -> None:
    """Process entry point: ``BareFleetState`` on a free loopback port."""
    run_on_uvloop(serve_bare(pipe, BareFleetState(fleets, next_page_token).handlers()), cores)
