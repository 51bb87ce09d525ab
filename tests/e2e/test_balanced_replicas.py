"""The compose profile ``replicas`` as real processes: three emulators on one Redis behind nginx.

A real redis-server, three ``fleet-emulator serve --backend redis`` processes started through the command
line, and Debian's nginx with the repository's ``deploy/nginx-grpc.conf`` (the file compose mounts; only
the addresses are made local). Clients talk to nginx alone, as they talk to :50051 in compose.

Which replica serves a stream is known for certain, not guessed: nginx names it in the ``x-upstream-addr``
response header (``$upstream_addr``, the replicas it tried, the one that took the call last), which
arrives as the stream's initial metadata. The test kills that replica with SIGKILL and checks that the
stream it served breaks, so the header was right; the resumed stream's header then names a replica that is
still running, and the killed one has exited, so it cannot be the one answering.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2, admin_pb2_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as pb_grpc
from tests.balancer import Balancer, balancing, nginx_binary
from tests.e2e.harness import (
    GRPCURL_STATUS_EXIT_BASE,
    EmulatorProcess,
    free_port,
    grpcurl,
    parse_error,
    parse_response_headers,
    serve_command,
    start,
)
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE, next_message

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.redis,
    pytest.mark.skipif(
        nginx_binary() is None, reason="no nginx: install Debian's nginx package (`make balancer` does)"
    ),
]

REPLICAS = 3
UPSTREAM_HEADER = "x-upstream-addr"
BREAK_TIMEOUT_S = 10.0


@contextmanager
def replicas(redis_url: str, folder: Path) -> Iterator[list[EmulatorProcess]]:
    """Three ``serve --backend redis`` processes on free ports, started side by side; at the end each that
    still runs gets SIGTERM and must exit with 0."""
    with ExitStack() as stack:
        started: list[EmulatorProcess] = []
        for n in range(1, REPLICAS + 1):
            port = free_port()
            listen = ("--host", "127.0.0.1", "--port", str(port))
            command = serve_command(*listen, "--backend", "redis", "--redis-url", redis_url)
            process = start(command, port, folder / f"emulator-{n}.log")
            stack.callback(process.terminate)  # also for those that fail to start
            started.append(process)
        for process in started:
            process.wait_ready()
        yield started
        for process in started:
            if process.process.poll() is None:
                assert process.terminate() == 0, f"{process.address}:\n{process.output()}"


@asynccontextmanager
async def balanced_replicas(
    redis_url: str, folder: Path
) -> AsyncIterator[tuple[list[EmulatorProcess], Balancer]]:
    """The topology of the compose profile: three replicas, then nginx in front of them, ready."""
    with ExitStack() as stack:
        emulators = await asyncio.to_thread(stack.enter_context, replicas(redis_url, folder))
        upstreams = [e.address for e in emulators]
        nginx = stack.enter_context(balancing(upstreams, free_port(), folder / "nginx"))
        await asyncio.to_thread(nginx.wait_ready)
        yield emulators, nginx


async def served_by(call: Any) -> str:
    """The replica that took ``call``, from nginx's header: the last address it tried."""
    metadata = await call.initial_metadata()
    tried = dict(metadata)[UPSTREAM_HEADER]
    assert isinstance(tried, str), metadata
    return tried.split(",")[-1].strip()


async def break_of(call: Any, on_the_way: int) -> grpc.aio.AioRpcError:
    """The error that ends ``call``, after at most ``on_the_way`` messages it may still have in buffers."""
    for _ in range(on_the_way + 1):
        try:
            message = await asyncio.wait_for(call.read(), BREAK_TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            return error
        assert isinstance(message, pb.StreamResponse), f"the stream ended without an error: {message}"
    raise AssertionError(f"the stream goes on after {on_the_way} messages")


async def publish(admin: admin_pb2_grpc.AdminServiceAsyncStub, n: int) -> admin_pb2.PublishEventResponse:
    """One event of the seed vehicle whose mission id says which it is."""
    change = pb.MissionProgressed(mission_id=f"m-{n}", stage=pb.MISSION_STAGE_ASSIGNED)
    request = admin_pb2.PublishEventRequest(
        event=pb.Event(vehicle_id=SEED_VEHICLE, mission_progressed=change)
    )
    response: admin_pb2.PublishEventResponse = await admin.PublishEvent(request, timeout=10)
    return response


def received(message: pb.StreamResponse) -> tuple[str, str]:
    return message.message_id, message.event.mission_progressed.mission_id


async def test_a_stream_resumes_through_another_replica_after_its_replica_is_killed(
    redis_url: str, tmp_path: Path
) -> None:
    """Open a stream through nginx, read part of what was published, SIGKILL the replica serving it,
    publish more, resume with the last ``message_id`` read: every later event arrives exactly once, in
    order, from another replica; then live events follow with nothing before them."""
    async with AsyncExitStack() as stack:
        emulators, nginx = await stack.enter_async_context(balanced_replicas(redis_url, tmp_path))
        upstreams = [e.address for e in emulators]
        channel = await stack.enter_async_context(grpc.aio.insecure_channel(nginx.address))
        api, admin = pb_grpc.FleetStateServiceStub(channel), admin_pb2_grpc.AdminServiceStub(channel)

        first: Any = api.StreamVehicleEvents(pb.StreamRequest(event_id=HAMBURG_EVENTS))
        stack.callback(first.cancel)
        assert not (await next_message(first)).HasField("event"), "the position comes first"
        serving = await served_by(first)
        [victim] = [e for e in emulators if e.address == serving]

        published = [await publish(admin, n) for n in range(5)]
        read = [received(await next_message(first)) for _ in range(3)]
        assert read == [(p.message_id, p.event.mission_progressed.mission_id) for p in published[:3]]
        last_read = read[-1][0]

        victim.process.send_signal(signal.SIGKILL)
        assert await asyncio.to_thread(victim.process.wait, BREAK_TIMEOUT_S) == -signal.SIGKILL
        broken = await break_of(first, len(published) - len(read))
        # nginx resets the client's stream (RST_STREAM, INTERNAL): clients resume on it as on UNAVAILABLE
        assert broken.code() in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL}, broken

        published += [await publish(admin, n) for n in range(5, 10)]  # through the replicas left
        resumed: Any = api.StreamVehicleEvents(
            pb.StreamRequest(event_id=HAMBURG_EVENTS, last_message_id=last_read)
        )
        stack.callback(resumed.cancel)
        other = await served_by(resumed)
        assert other in upstreams and other != victim.address, f"{other} among {upstreams}"
        assert [e.process.poll() for e in emulators if e.address == other] == [None]

        expected = [(p.message_id, p.event.mission_progressed.mission_id) for p in published[3:]]
        assert [received(await next_message(resumed)) for _ in expected] == expected
        live = await publish(admin, 10)
        assert received(await next_message(resumed)) == (live.message_id, "m-10"), "nothing else before"


async def test_grpcurl_sees_one_emulator_through_the_balancer(redis_url: str, tmp_path: Path) -> None:
    """What the README shows on :50051 works through nginx as well: reflection, the emulator's headers, and
    an error's rich details in the trailers."""
    async with balanced_replicas(redis_url, tmp_path) as (emulators, nginx):
        listed = await asyncio.to_thread(grpcurl, "-plaintext", nginx.address, "list")
        request = '{"fleet_id": "hamburg", "page_token": "nope"}'
        method = "moia.fleet.state.v1.FleetStateService/ListVehicles"
        failed = await asyncio.to_thread(
            grpcurl, "-plaintext", "-v", "-H", "x-flow-id: via-nginx", "-d", request, nginx.address, method
        )

    assert listed.returncode == 0, listed.stderr
    assert "moia.fleet.state.v2.FleetStateService" in listed.stdout.split()
    assert failed.returncode == GRPCURL_STATUS_EXIT_BASE + grpc.StatusCode.NOT_FOUND.value[0], failed.stderr
    error = parse_error(failed.stderr)
    assert error.detail("google.rpc.ErrorInfo")["reason"] == "PAGE_TOKEN_NOT_FOUND"
    assert error.detail("google.rpc.RequestInfo")["request_id"] == "via-nginx"
    headers = parse_response_headers(failed.stdout)
    assert headers["x-flow-id"] == ["via-nginx"]
    [upstream] = headers[UPSTREAM_HEADER]
    assert upstream.split(", ")[-1] in {e.address for e in emulators}
