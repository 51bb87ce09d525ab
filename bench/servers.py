"""The servers under test, each in its own spawned process: the emulator and the bare ``grpc.aio`` baseline.

``serving`` starts a server process, learns its port through a pipe and waits until the gRPC health check
answers SERVING; leaving the block closes the pipe, which tells the server to stop gracefully. A server
whose parent vanished sees the pipe close too, and every server stops by itself after ``MAX_SERVE_SECONDS``.
The emulator runs on either backend, optionally prepared (e.g. prefilled) before it reports its port. The
unary baseline answers each benchmarked method with fixed pre-serialized bytes (identity serializers), so
it costs nothing but gRPC itself; ``serve_bare`` serves any such handlers (the streaming baseline's too).
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleet_emulator.server import Emulator, Settings

HOST = "127.0.0.1"
SPAWN = multiprocessing.get_context("spawn")
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
MAX_SERVE_SECONDS = 600.0
SERVING = health_pb2.HealthCheckResponse.SERVING


@contextmanager
def serving(
    server_main: Callable[..., None], *args: object, ready_timeout: float = READY_TIMEOUT_SECONDS
) -> Iterator[str]:
    """Run ``server_main(pipe, *args)`` in a spawned process; yield its address once health is SERVING.
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
        yield address
    finally:
        parent_end.close()
        process.join(STOP_TIMEOUT_SECONDS)
        if process.is_alive():
            process.kill()
            process.join()


async def wait_until_serving(address: str) -> None:
    """Ask Health/Check until the server says SERVING, for at most ``READY_TIMEOUT_SECONDS``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_TIMEOUT_SECONDS
    async with grpc.aio.insecure_channel(address) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        while loop.time() < deadline:
            request = health_pb2.HealthCheckRequest()
            reply = await check(request, timeout=READY_TIMEOUT_SECONDS, wait_for_ready=True)
            if reply.status == SERVING:
                return
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{address} did not become SERVING within {READY_TIMEOUT_SECONDS}s")


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
) -> None:
    """Process entry point: the emulator with the bundled demo scenario on a free loopback port, on
    ``backend``; ``prepare`` (a picklable function) runs once it has started, before it reports its port."""
    settings = Settings(host=HOST, port=0, backend=backend, redis_url=redis_url, grace_seconds=1.0)
    asyncio.run(_serve_emulator(pipe, settings, prepare))


async def _serve_emulator(pipe: Connection, settings: Settings, prepare: Prepare | None) -> None:
    emulator = Emulator(settings)
    try:
        port = await emulator.start()
        if prepare is not None:
            await prepare(emulator)
        await _report_port_and_serve(pipe, port)
    finally:
        await emulator.stop()


def run_baseline(pipe: Connection, responses: Mapping[str, bytes]) -> None:
    """Process entry point: a bare server answering each method path in ``responses`` with its bytes."""
    asyncio.run(serve_bare(pipe, _canned_handlers(responses)))


async def serve_bare(pipe: Connection, handlers: Sequence[grpc.GenericRpcHandler[bytes, bytes]]) -> None:
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


def _canned_handlers(responses: Mapping[str, bytes]) -> tuple[grpc.GenericRpcHandler[bytes, bytes], ...]:
    """One generic handler per service, each method answering its fixed bytes without any (de)serializing."""
    methods_by_service: dict[str, dict[str, grpc.RpcMethodHandler[bytes, bytes]]] = {}
    for path, payload in responses.items():
        service, method = path.lstrip("/").split("/")
        methods_by_service.setdefault(service, {})[method] = grpc.unary_unary_rpc_method_handler(
            _answer_with(payload), request_deserializer=None, response_serializer=None
        )
    return tuple(grpc.method_handlers_generic_handler(s, m) for s, m in methods_by_service.items())


def _answer_with(payload: bytes) -> Callable[[bytes, Any], Any]:
    async def answer(request: bytes, context: Any) -> bytes:
        return payload

    return answer
