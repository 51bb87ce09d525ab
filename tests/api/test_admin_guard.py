"""The admin plane where auth is on: an admin token guards every admin call, and the secret of the bearer
tokens is random unless configured (one per process in memory, one shared by the replicas on Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as adm
from fleet_emulator._gen.emulator.admin.v1 import admin_pb2_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc
from fleet_emulator.domain.policies import AuthMode, Policies
from fleet_emulator.server import Emulator, Settings
from tests.rich_errors import error_info

ADMIN_TOKEN = "s3cret-admin"
JWT = Policies(auth_mode=AuthMode.JWT)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture
async def guarded() -> AsyncIterator[grpc.aio.Channel]:
    emulator = Emulator(
        Settings(host="127.0.0.1", port=0, admin_token=ADMIN_TOKEN, policies=JWT, grace_seconds=0)
    )
    await emulator.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{emulator.port}") as channel:
        yield channel
    await emulator.stop()


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ((), "ADMIN_TOKEN_MISSING"),
        (bearer("guess"), "ADMIN_TOKEN_INVALID"),
        (bearer(""), "ADMIN_TOKEN_MISSING"),
    ],
)
async def test_without_the_admin_token_no_admin_call_is_served(
    guarded: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...], reason: str
) -> None:
    admin = admin_pb2_grpc.AdminServiceStub(guarded)
    for call in (
        admin.IssueToken(adm.IssueTokenRequest(subject="intruder"), metadata=metadata),
        admin.UpdatePolicies(adm.UpdatePoliciesRequest(policies=adm.Policies()), metadata=metadata),
        admin.ListJournalEntries(adm.ListJournalEntriesRequest(), metadata=metadata),
        admin.DeleteNamespace(adm.DeleteNamespaceRequest(namespace="x"), metadata=metadata),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert (refused.value.code(), error_info(refused.value).reason) == (
            grpc.StatusCode.UNAUTHENTICATED,
            reason,
        )


async def test_with_the_admin_token_the_admin_service_works_and_the_api_takes_its_tokens(
    guarded: grpc.aio.Channel,
) -> None:
    admin = admin_pb2_grpc.AdminServiceStub(guarded)
    issued = await admin.IssueToken(adm.IssueTokenRequest(subject="client"), metadata=bearer(ADMIN_TOKEN))
    api = fleet_state_pb2_grpc.FleetStateServiceStub(guarded)
    await api.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"), metadata=bearer(issued.access_token))
    with pytest.raises(grpc.aio.AioRpcError) as refused:  # the admin token is no API token
        await api.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"), metadata=bearer(ADMIN_TOKEN))
    assert error_info(refused.value).reason == "TOKEN_INVALID"
    health = await health_pb2_grpc.HealthStub(guarded).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING, "health needs no token"


async def start_emulator(backend: str = "memory", redis_url: str = "", jwt_secret: str = "") -> Emulator:
    settings = Settings(
        host="127.0.0.1", port=0, backend=backend, redis_url=redis_url, jwt_secret=jwt_secret, policies=JWT
    )
    emulator = Emulator(settings)
    await emulator.start()
    return emulator


async def token_of(emulator: Emulator) -> str:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{emulator.port}") as channel:
        issued = await admin_pb2_grpc.AdminServiceStub(channel).IssueToken(adm.IssueTokenRequest(subject="c"))
        return issued.access_token


async def accepts(emulator: Emulator, token: str) -> bool:
    """Whether the emulator takes the token: True, or False for TOKEN_INVALID (anything else fails)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{emulator.port}") as channel:
        api = fleet_state_pb2_grpc.FleetStateServiceStub(channel)
        call = api.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"), metadata=bearer(token))
        outcome = await asyncio.gather(call, return_exceptions=True)
    if not isinstance(outcome[0], grpc.aio.AioRpcError):
        return True
    assert error_info(outcome[0]).reason == "TOKEN_INVALID"
    return False


async def test_without_a_jwt_secret_each_process_signs_with_its_own_random_one() -> None:
    first, second = await start_emulator(), await start_emulator()
    try:
        token = await token_of(first)
        assert await accepts(first, token)
        assert not await accepts(second, token), "no shared default secret to forge tokens with"
    finally:
        await first.stop()
        await second.stop()


async def test_replicas_on_one_redis_share_one_random_secret_and_a_configured_one_wins(
    redis_url: str,
) -> None:
    replicas = [await start_emulator(backend="redis", redis_url=redis_url) for _ in range(2)]
    configured = await start_emulator(
        backend="redis", redis_url=redis_url, jwt_secret="a-configured-secret-of-32-bytes-at-least"
    )
    try:
        token = await token_of(replicas[0])
        assert await accepts(replicas[1], token)
        assert not await accepts(configured, token)
    finally:
        for emulator in (*replicas, configured):
            await emulator.stop()
