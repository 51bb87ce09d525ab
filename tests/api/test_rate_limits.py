"""Per-client rate limits through gRPC on both backends, on the virtual clock: burst, refusal with RetryInfo
and QuotaFailure, refill, separate clients, the ``*`` rule, the ratelimit headers and the journal."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as adm
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2 as v1
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2_grpc as v1_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from tests.api.conftest import Target
from tests.rich_errors import details_of, error_info, rich_status
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE, next_message

Metadata = tuple[tuple[str, str], ...]
SECOND, MINUTE = adm.RATE_PERIOD_SECOND, adm.RATE_PERIOD_MINUTE
GET_FLEET = pb.GetFleetRequest(fleet_id="hamburg")
RATELIMIT = ("ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")


def ns(name: str, token: str = "", flow_id: str = "") -> Metadata:
    sent = [("x-emulator-namespace", name)]
    if token:
        sent.append(("authorization", f"Bearer {token}"))
    if flow_id:
        sent.append(("x-flow-id", flow_id))
    return tuple(sent)


async def limited(
    target: Target,
    *limits: adm.RateLimit,
    preset: str = "",
    auth: adm.AuthMode.ValueType = adm.AUTH_MODE_NONE,
) -> str:
    """A new namespace with these rate limits (or a preset's) and auth mode."""
    name = f"rl-{uuid.uuid4().hex[:12]}"
    request = adm.UpdatePoliciesRequest(
        policies=adm.Policies(auth_mode=auth, rate_limits=limits),
        update_mask=field_mask_pb2.FieldMask(paths=["auth_mode", "rate_limits"]),
        rate_limit_preset=preset,
    )
    await target.admin.UpdatePolicies(request, metadata=ns(name))
    return name


async def token(target: Target, name: str, subject: str) -> str:
    issued = await target.admin.IssueToken(adm.IssueTokenRequest(subject=subject), metadata=ns(name))
    return str(issued.access_token)


async def quota(call: Any) -> tuple[int, int, int]:
    """The ratelimit-limit, -remaining and -reset headers of a call that succeeds."""
    await call
    sent = dict(await call.initial_metadata())
    return int(sent["ratelimit-limit"]), int(sent["ratelimit-remaining"]), int(sent["ratelimit-reset"])


async def exhausted(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await (call.read() if hasattr(call, "read") else call)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, caught.value.details()
    return caught.value


def retry_delay(error: grpc.aio.AioRpcError) -> timedelta:
    [retry] = details_of(rich_status(error), error_details_pb2.RetryInfo)
    delay: timedelta = retry.retry_delay.ToTimedelta()
    return delay


async def test_a_burst_passes_then_the_client_is_refused_with_retry_info_and_quota_failure(
    target: Target,
) -> None:
    name = await limited(target, adm.RateLimit(method="GetFleet", requests=1, period=SECOND, burst=2))

    assert [await quota(target.api.GetFleet(GET_FLEET, metadata=ns(name))) for _ in range(3)] == [
        (3, 2, 1),
        (3, 1, 2),
        (3, 0, 3),
    ]
    error = await exhausted(target.api.GetFleet(GET_FLEET, metadata=ns(name, flow_id="too-many")))

    assert dict(error.initial_metadata() or ())["x-flow-id"] == "too-many"
    info = error_info(error)
    assert info.reason == "RATE_LIMITED"
    assert info.metadata == {
        "flow_id": "too-many",
        "client": "127.0.0.1",
        "method": "GetFleet",
        "limit": "GetFleet: 1 r/s, burst 2",
    }
    assert retry_delay(error) == timedelta(seconds=1)
    [failure] = details_of(rich_status(error), error_details_pb2.QuotaFailure)
    assert [(v.subject, v.description) for v in failure.violations] == [
        ("client:127.0.0.1", "GetFleet: 1 r/s, burst 2")
    ]


async def test_advancing_the_clock_refills_the_bucket(target: Target) -> None:
    name = await limited(target, adm.RateLimit(method="ListVehicles", requests=10, period=MINUTE))
    request = pb.ListVehiclesRequest(fleet_id="hamburg", page_size=1)
    assert await quota(target.api.ListVehicles(request, metadata=ns(name))) == (1, 0, 6)

    await target.clock.advance(timedelta(seconds=4))
    assert retry_delay(await exhausted(target.api.ListVehicles(request, metadata=ns(name)))) == timedelta(
        seconds=2
    )
    await target.clock.advance(timedelta(seconds=2))
    assert await quota(target.api.ListVehicles(request, metadata=ns(name))) == (1, 0, 6)
    await exhausted(target.api.ListVehicles(request, metadata=ns(name)))


async def test_each_client_has_its_own_budget(target: Target) -> None:
    name = await limited(target, adm.RateLimit(method="GetFleet", requests=1, period=MINUTE))
    alice, bob = await token(target, name, "alice"), await token(target, name, "bob")

    assert await quota(target.api.GetFleet(GET_FLEET, metadata=ns(name, alice))) == (1, 0, 60)
    error = await exhausted(target.api.GetFleet(GET_FLEET, metadata=ns(name, alice)))
    assert error_info(error).metadata["client"] == "alice"
    assert await quota(target.api.GetFleet(GET_FLEET, metadata=ns(name, bob))) == (1, 0, 60)
    assert await quota(target.api.GetFleet(GET_FLEET, metadata=ns(name))) == (1, 0, 60), "no token: the peer"


async def test_the_star_rule_covers_rpcs_without_their_own_rule_with_one_budget(target: Target) -> None:
    name = await limited(
        target,
        adm.RateLimit(method="*", requests=1, period=MINUTE),
        adm.RateLimit(method="GetVehicle", requests=1, period=SECOND, burst=4),
    )

    assert await quota(target.api.GetFleet(GET_FLEET, metadata=ns(name))) == (1, 0, 60)
    error = await exhausted(target.api.ListFleets(pb.ListFleetsRequest(), metadata=ns(name)))
    assert error_info(error).metadata["limit"] == "*: 1 r/m"
    vehicle = pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE)
    assert await quota(target.api.GetVehicle(vehicle, metadata=ns(name))) == (5, 4, 1)


async def test_a_full_method_name_limits_one_version_only(target: Target) -> None:
    rule = adm.RateLimit(method="moia.fleet.state.v2.FleetStateService/GetFleet", requests=1, period=MINUTE)
    name = await limited(target, rule)
    older = v1_grpc.FleetStateServiceStub(target.channel)

    await quota(target.api.GetFleet(GET_FLEET, metadata=ns(name)))
    await exhausted(target.api.GetFleet(GET_FLEET, metadata=ns(name)))
    for _ in range(3):
        call = older.GetFleet(v1.GetFleetRequest(fleet_id="hamburg"), metadata=ns(name))
        await call
        assert not {*RATELIMIT} & set(dict(await call.initial_metadata())), "no rule: no headers"


async def test_the_seed_001_preset_limits_list_fleets_to_a_burst_of_three(target: Target) -> None:
    name = await limited(target, preset="seed-001")

    for _ in range(3):
        await quota(target.api.ListFleets(pb.ListFleetsRequest(), metadata=ns(name)))
    error = await exhausted(target.api.ListFleets(pb.ListFleetsRequest(), metadata=ns(name)))

    assert retry_delay(error) == timedelta(seconds=15)


async def test_streams_are_limited_when_they_have_a_rule(target: Target) -> None:
    name = await limited(target, adm.RateLimit(method="StreamVehicleEvents", requests=1, period=MINUTE))
    request = pb.StreamRequest(event_id=HAMBURG_EVENTS)

    stream = target.api.StreamVehicleEvents(request, metadata=ns(name))
    await next_message(stream)
    assert dict(await stream.initial_metadata())["ratelimit-remaining"] == "0"
    stream.cancel()
    await exhausted(target.api.StreamVehicleEvents(request, metadata=ns(name)))


async def test_unauthenticated_comes_before_rate_limits_which_come_before_faults(target: Target) -> None:
    name = await limited(
        target, adm.RateLimit(method="GetFleet", requests=1, period=MINUTE), auth=adm.AUTH_MODE_JWT
    )
    fault = adm.Fault(method="GetFleet", fail=adm.FailCall(code=14, message="maintenance"))
    await target.admin.CreateFault(adm.CreateFaultRequest(fault=fault), metadata=ns(name))
    valid = await token(target, name, "acme")

    with pytest.raises(grpc.aio.AioRpcError) as unauthenticated:
        await target.api.GetFleet(GET_FLEET, metadata=ns(name))
    assert unauthenticated.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as faulted:
        await target.api.GetFleet(GET_FLEET, metadata=ns(name, valid))
    assert faulted.value.code() == grpc.StatusCode.UNAVAILABLE, "admitted, then the fault acts"
    await exhausted(target.api.GetFleet(GET_FLEET, metadata=ns(name, valid)))


async def test_refused_calls_are_journaled_with_reason_client_and_retry_delay(target: Target) -> None:
    name = await limited(target, adm.RateLimit(method="GetFleet", requests=2, period=MINUTE))
    alice = await token(target, name, "alice")
    await target.api.GetFleet(GET_FLEET, metadata=ns(name, alice, "ok"))
    await exhausted(target.api.GetFleet(GET_FLEET, metadata=ns(name, alice, "refused")))

    listed = await target.admin.ListJournalEntries(adm.ListJournalEntriesRequest(code=8), metadata=ns(name))
    assert [(e.flow_id, e.client, e.reason, e.finished) for e in listed.entries] == [
        ("refused", "alice", "RATE_LIMITED", True)
    ]
    namespace = await target.emulator.namespaces.get(name)
    [entry] = [e for e in await namespace.journal.listed() if e.flow_id == "refused"]
    assert entry.retry_delay == timedelta(seconds=30)


async def test_new_limits_and_a_reset_start_with_full_buckets(target: Target) -> None:
    name = await limited(target, adm.RateLimit(method="GetFleet", requests=1, period=MINUTE))
    await quota(target.api.GetFleet(GET_FLEET, metadata=ns(name)))
    await exhausted(target.api.GetFleet(GET_FLEET, metadata=ns(name)))

    rules = [adm.RateLimit(method="GetFleet", requests=1, period=MINUTE, burst=1)]
    request = adm.UpdatePoliciesRequest(
        policies=adm.Policies(rate_limits=rules), update_mask=field_mask_pb2.FieldMask(paths=["rate_limits"])
    )
    await target.admin.UpdatePolicies(request, metadata=ns(name))
    assert await quota(target.api.GetFleet(GET_FLEET, metadata=ns(name))) == (2, 1, 60)
    await target.admin.ResetEmulator(adm.ResetEmulatorRequest(), metadata=ns(name))
    for _ in range(5):
        call = target.api.GetFleet(GET_FLEET, metadata=ns(name))
        await call
        assert "ratelimit-limit" not in dict(await call.initial_metadata()), "the reset dropped the limits"
