"""Where the admin service is: on the API port by default, on a port of its own, or off."""

from __future__ import annotations

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as adm
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2_grpc
from fleet_emulator.server import ADMIN_OFF, ADMIN_SAME_PORT, Emulator, Settings

ADMIN = "emulator.admin.v1.AdminService"


async def answers_admin(port: int) -> grpc.StatusCode:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            await admin_pb2_grpc.AdminServiceStub(channel).GetClock(adm.GetClockRequest())
            return grpc.StatusCode.OK
        except grpc.aio.AioRpcError as error:
            return error.code()


async def listed(port: int) -> list[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for answer in stub.ServerReflectionInfo(iter([request])):
            return [s.name for s in answer.list_services_response.service]
    return []


@pytest.mark.parametrize(
    ("admin_port", "on_api_port", "own_port"),
    [(ADMIN_SAME_PORT, True, False), (0, False, True), (ADMIN_OFF, False, False)],
    ids=["same-port", "own-port", "off"],
)
async def test_admin_placement(admin_port: int, on_api_port: bool, own_port: bool) -> None:
    emulator = Emulator(Settings(host="127.0.0.1", port=0, admin_port=admin_port, grace_seconds=0.1))
    await emulator.start()
    try:
        expected = grpc.StatusCode.OK if on_api_port else grpc.StatusCode.UNIMPLEMENTED
        assert await answers_admin(emulator.port) == expected
        assert (ADMIN in await listed(emulator.port)) is on_api_port
        if own_port:
            assert emulator.admin_port not in (0, emulator.port)
            assert await answers_admin(emulator.admin_port) == grpc.StatusCode.OK
            assert ADMIN in await listed(emulator.admin_port)
    finally:
        await emulator.stop()
