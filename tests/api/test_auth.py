"""Bearer auth through gRPC on both backends: tokens from IssueToken, the auth modes of a namespace, fleet
scopes checked before existence (AIP-193), expiry on the virtual clock, and the client in the journal."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import grpc
import jwt
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from google.rpc import error_details_pb2

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as adm
from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2 as v1beta4
from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2_grpc as v1beta4_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from tests.api.conftest import START, Target
from tests.rich_errors import details_of, error_info, rich_status
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE, next_message

Metadata = tuple[tuple[str, str], ...]
HANOVER_EVENTS = "fleets/hanover/vehicle-events"
UNKNOWN_VEHICLE = "00000000-0000-4000-8000-000000000000"
ISSUE_TOKEN = "/emulator.admin.v1.AdminService/IssueToken"


async def failure(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def namespace_with(target: Target, mode: adm.AuthMode.ValueType) -> str:
    """A new namespace whose auth mode is ``mode``."""
    name = f"auth-{uuid.uuid4().hex[:12]}"
    request = adm.UpdatePoliciesRequest(
        policies=adm.Policies(auth_mode=mode), update_mask=field_mask_pb2.FieldMask(paths=["auth_mode"])
    )
    await target.admin.UpdatePolicies(request, metadata=(("x-emulator-namespace", name),))
    return name


async def issue(
    target: Target, namespace: str, subject: str = "acme", fleets: tuple[str, ...] = (), lifetime_s: int = 0
) -> adm.IssueTokenResponse:
    request = adm.IssueTokenRequest(
        subject=subject, fleet_ids=fleets, lifetime=duration_pb2.Duration(seconds=lifetime_s)
    )
    response: adm.IssueTokenResponse = await target.admin.IssueToken(
        request, metadata=(("x-emulator-namespace", namespace),)
    )
    return response


def headers(namespace: str, token: str | None = None, flow_id: str = "", scheme: str = "Bearer") -> Metadata:
    sent = [("x-emulator-namespace", namespace)]
    if token is not None:
        sent.append(("authorization", f"{scheme} {token}"))
    if flow_id:
        sent.append(("x-flow-id", flow_id))
    return tuple(sent)


async def refusal(target: Target, metadata: Metadata) -> grpc.aio.AioRpcError:
    return await failure(target.api.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"), metadata=metadata))


async def test_jwt_mode_refuses_a_call_without_token_with_details_and_the_flow_id(target: Target) -> None:
    name = await namespace_with(target, adm.AUTH_MODE_JWT)

    call = target.api.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"), metadata=headers(name, flow_id="f-1"))
    error = await failure(call)

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert dict(error.initial_metadata() or ())["x-flow-id"] == "f-1"
    info = error_info(error)
    assert (info.reason, info.domain, info.metadata["flow_id"]) == (
        "TOKEN_MISSING",
        "fleet-emulator.moia.io",
        "f-1",
    )
    status = rich_status(error)
    assert [d.TypeName() for d in status.details] == ["google.rpc.ErrorInfo", "google.rpc.RequestInfo"]
    [request_info] = details_of(status, error_details_pb2.RequestInfo)
    assert request_info.request_id == "f-1"


async def test_jwt_mode_serves_a_valid_token_whatever_the_case_of_bearer(target: Target) -> None:
    name = await namespace_with(target, adm.AUTH_MODE_JWT)
    token = (await issue(target, name)).access_token

    for scheme in ("Bearer", "bearer", "BEARER"):
        call = target.api.GetFleet(
            pb.GetFleetRequest(fleet_id="hamburg"), metadata=headers(name, token, scheme=scheme)
        )
        assert (await call).fleet.id == "hamburg"


@pytest.mark.parametrize(
    ("sent", "reason"),
    [
        ("garbage", "TOKEN_INVALID"),
        (jwt.encode({"sub": "acme", "exp": 4_000_000_000}, "not-the-emulators-secret-" * 2), "TOKEN_INVALID"),
        (jwt.encode({"sub": "acme"}, "fleet-emulator-development-secret"), "TOKEN_INVALID"),
    ],
)
async def test_jwt_mode_refuses_tokens_it_did_not_issue(target: Target, sent: str, reason: str) -> None:
    name = await namespace_with(target, adm.AUTH_MODE_JWT)

    error = await refusal(target, headers(name, sent))

    assert (error.code(), error_info(error).reason) == (grpc.StatusCode.UNAUTHENTICATED, reason)


async def test_a_token_in_another_scheme_counts_as_missing(target: Target) -> None:
    name = await namespace_with(target, adm.AUTH_MODE_JWT)
    token = (await issue(target, name)).access_token

    error = await refusal(target, headers(name, token, scheme="Basic"))

    assert error_info(error).reason == "TOKEN_MISSING"


async def test_a_token_expires_on_the_virtual_clock(target: Target) -> None:
    name = await namespace_with(target, adm.AUTH_MODE_JWT)
    issued = await issue(target, name, lifetime_s=60)
    assert issued.expire_time.ToDatetime().replace(tzinfo=START.tzinfo) == START + timedelta(seconds=60)

    await target.clock.advance(timedelta(seconds=59))
    assert (
        await target.api.GetFleet(
            pb.GetFleetRequest(fleet_id="hamburg"), metadata=headers(name, issued.access_token)
        )
    ).fleet.id
    await target.clock.advance(timedelta(seconds=1))
    error = await refusal(target, headers(name, issued.access_token))

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    info = error_info(error)
    assert (info.reason, info.metadata["expire_time"]) == ("TOKEN_EXPIRED", issued.expire_time.ToJsonString())


async def test_issued_tokens_carry_subject_scopes_and_a_30_minute_default_lifetime(target: Target) -> None:
    issued = await issue(target, "default-lifetime", subject="acme-charging", fleets=("hanover",))

    claims = jwt.decode(issued.access_token, options={"verify_signature": False})
    assert claims["sub"] == "acme-charging"
    assert claims["fleets"] == ["hanover"]
    assert claims["iss"] == "fleet-emulator"
    assert claims["exp"] - claims["iat"] == 30 * 60
    assert issued.expire_time.ToJsonString() == "2026-11-22T08:30:00Z"


async def test_a_bad_token_request_names_every_problem(target: Target) -> None:
    request = adm.IssueTokenRequest(
        subject="", fleet_ids=["hamburg", "Bad Fleet"], lifetime=duration_pb2.Duration(seconds=31 * 86_400)
    )
    error = await failure(target.admin.IssueToken(request))

    assert (error.code(), error_info(error).reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_INVALID")
    [bad] = details_of(rich_status(error), error_details_pb2.BadRequest)
    assert [v.field for v in bad.field_violations] == ["subject", "fleet_ids[1]", "lifetime"]


@pytest.mark.parametrize("seconds", [-1, 2**62])
async def test_lifetimes_beyond_any_range_are_invalid_arguments(target: Target, seconds: int) -> None:
    request = adm.IssueTokenRequest(subject="acme", lifetime=duration_pb2.Duration(seconds=seconds))
    error = await failure(target.admin.IssueToken(request))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    [bad] = details_of(rich_status(error), error_details_pb2.BadRequest)
    assert [v.field for v in bad.field_violations] == ["lifetime"]


async def denied(call: Any) -> str:
    """The resource name of the PERMISSION_DENIED a call (unary, or a stream's first read) ends with."""
    error = await failure(call.read() if hasattr(call, "read") else call)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
    assert error_info(error).reason == "FLEET_NOT_IN_SCOPE"
    [resource] = details_of(rich_status(error), error_details_pb2.ResourceInfo)
    return str(resource.resource_name)


async def test_fleets_outside_the_scope_are_denied_before_their_existence_is_checked(target: Target) -> None:
    name = await namespace_with(target, adm.AUTH_MODE_JWT)
    md = headers(name, (await issue(target, name, fleets=("hanover",))).access_token)
    api = target.api

    for fleet in ("hamburg", "nowhere"):
        assert await denied(api.GetFleet(pb.GetFleetRequest(fleet_id=fleet), metadata=md)) == fleet
        assert await denied(api.ListVehicles(pb.ListVehiclesRequest(fleet_id=fleet), metadata=md)) == fleet
        events = f"fleets/{fleet}/vehicle-events"
        assert await denied(api.StreamVehicleEvents(pb.StreamRequest(event_id=events), metadata=md)) == fleet
        assert await denied(api.PollVehicleEvents(pb.PollRequest(event_id=events), metadata=md)) == fleet
        subscribe = pb.SubscribeToVehicleStatesRequest(fleet_id=fleet)
        assert await denied(api.SubscribeToVehicleStates(subscribe, metadata=md)) == fleet
    for vehicle in (SEED_VEHICLE, UNKNOWN_VEHICLE):
        assert await denied(api.GetVehicle(pb.GetVehicleRequest(vehicle_id=vehicle), metadata=md)) == vehicle

    assert (await api.GetFleet(pb.GetFleetRequest(fleet_id="hanover"), metadata=md)).fleet.id == "hanover"
    polled = await api.PollVehicleEvents(pb.PollRequest(event_id=HANOVER_EVENTS), metadata=md)
    assert polled.message_id


async def test_a_token_for_every_fleet_still_gets_not_found_for_what_does_not_exist(target: Target) -> None:
    name = await namespace_with(target, adm.AUTH_MODE_JWT)
    md = headers(name, (await issue(target, name)).access_token)

    fleet = await failure(target.api.GetFleet(pb.GetFleetRequest(fleet_id="nowhere"), metadata=md))
    vehicle = await failure(
        target.api.GetVehicle(pb.GetVehicleRequest(vehicle_id=UNKNOWN_VEHICLE), metadata=md)
    )

    assert [fleet.code(), vehicle.code()] == [grpc.StatusCode.NOT_FOUND] * 2


async def test_list_fleets_shows_only_the_fleets_in_scope(target: Target) -> None:
    name = await namespace_with(target, adm.AUTH_MODE_JWT)
    scoped = headers(name, (await issue(target, name, fleets=("hanover", "elsewhere"))).access_token)
    everything = headers(name, (await issue(target, name)).access_token)

    listed = await target.api.ListFleets(pb.ListFleetsRequest(), metadata=scoped)
    assert [f.id for f in listed.fleets] == ["hanover"]
    listed = await target.api.ListFleets(pb.ListFleetsRequest(), metadata=everything)
    assert {f.id for f in listed.fleets} == {"hamburg", "hanover"}


async def test_any_mode_takes_any_bearer_token_without_scopes_but_wants_one(target: Target) -> None:
    name = await namespace_with(target, adm.AUTH_MODE_ANY)
    scoped = (await issue(target, name, fleets=("hanover",), lifetime_s=1)).access_token
    await target.clock.advance(timedelta(hours=1))

    for token in ("anything-at-all", scoped):
        call = target.api.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"), metadata=headers(name, token))
        assert (await call).fleet.id == "hamburg"
    error = await refusal(target, headers(name))
    assert (error.code(), error_info(error).reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING")


async def test_none_mode_serves_calls_with_or_without_a_token(target: Target) -> None:
    name = await namespace_with(target, adm.AUTH_MODE_NONE)

    for token in (None, "garbage"):
        call = target.api.GetFleet(pb.GetFleetRequest(fleet_id="hamburg"), metadata=headers(name, token))
        assert (await call).fleet.id == "hamburg"


async def test_a_refused_call_of_a_deprecated_version_still_gets_its_headers(target: Target) -> None:
    name = await namespace_with(target, adm.AUTH_MODE_JWT)
    old = v1beta4_grpc.FleetStateServiceStub(target.channel)

    error = await failure(
        old.GetFleet(v1beta4.GetFleetRequest(fleet_id="hamburg"), metadata=headers(name, flow_id="old-1"))
    )

    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    sent = dict(error.initial_metadata() or ())
    assert (sent["x-flow-id"], sent["deprecation"]) == ("old-1", "true")


async def test_the_admin_service_needs_no_token_in_jwt_mode(target: Target) -> None:
    name = await namespace_with(target, adm.AUTH_MODE_JWT)

    policies = await target.admin.GetPolicies(adm.GetPoliciesRequest(), metadata=headers(name))

    assert policies.policies.auth_mode == adm.AUTH_MODE_JWT


async def test_the_journal_names_the_client_of_each_call(target: Target) -> None:
    name = await namespace_with(target, adm.AUTH_MODE_JWT)
    issued = await issue(target, name, subject="acme-charging", lifetime_s=600)
    get = pb.GetFleetRequest(fleet_id="hamburg")
    await target.api.GetFleet(get, metadata=headers(name, issued.access_token, flow_id="with-token"))
    await refusal(target, headers(name, flow_id="without-token"))
    await refusal(target, headers(name, "opaque", flow_id="opaque-token"))

    entries = (
        await target.admin.ListJournalEntries(adm.ListJournalEntriesRequest(), metadata=headers(name))
    ).entries
    by_flow = {e.flow_id: e for e in entries}
    assert (by_flow["with-token"].client, by_flow["with-token"].code) == ("acme-charging", 0)
    assert (by_flow["without-token"].client, by_flow["without-token"].code) == ("127.0.0.1", 16)
    assert by_flow["without-token"].reason == "TOKEN_MISSING"
    assert by_flow["opaque-token"].client.startswith("token:")
    assert by_flow["opaque-token"].metadata["authorization"] == "<redacted>"
    namespace = await target.emulator.namespaces.get(name)
    [called] = [e for e in await namespace.journal.listed() if e.flow_id == "with-token"]
    assert called.token_expiry == START + timedelta(seconds=600)


async def test_each_token_issued_is_journaled_with_its_subject_and_expiry(target: Target) -> None:
    name = f"tokens-{uuid.uuid4().hex[:8]}"
    await issue(target, name, subject="renewer", lifetime_s=120)
    await target.clock.advance(timedelta(seconds=30))
    await issue(target, name, subject="renewer", lifetime_s=120)

    namespace = await target.emulator.namespaces.get(name)
    issued = [e for e in await namespace.journal.listed() if e.method == ISSUE_TOKEN]
    assert [(e.client, e.version, e.finished) for e in issued] == [("renewer", "admin", True)] * 2
    assert [e.token_expiry for e in issued] == [
        START + timedelta(seconds=120),
        START + timedelta(seconds=150),
    ]
    assert [e.start_time for e in issued] == [START, START + timedelta(seconds=30)]
    request = issued[0].request
    assert request is not None and request.message.subject == "renewer"
    listed = await target.admin.ListJournalEntries(
        adm.ListJournalEntriesRequest(method="IssueToken"), metadata=headers(name)
    )
    assert [e.client for e in listed.entries] == ["renewer", "renewer"]


async def test_a_stream_in_scope_is_served_with_a_token(target: Target) -> None:
    name = await namespace_with(target, adm.AUTH_MODE_JWT)
    md = headers(name, (await issue(target, name, fleets=("hamburg",))).access_token)

    stream = target.api.StreamVehicleEvents(pb.StreamRequest(event_id=HAMBURG_EVENTS), metadata=md)
    first = await next_message(stream)
    stream.cancel()

    assert first.message_id


async def test_a_refused_call_uses_up_no_fault_rule(target: Target) -> None:
    name = await namespace_with(target, adm.AUTH_MODE_JWT)
    fault = adm.Fault(method="GetFleet", times=1, fail=adm.FailCall(code=14, message="down"))
    await target.admin.CreateFault(
        adm.CreateFaultRequest(fault=fault), metadata=(("x-emulator-namespace", name),)
    )
    assert (await refusal(target, headers(name))).code() == grpc.StatusCode.UNAUTHENTICATED
    token = (await issue(target, name)).access_token
    assert (await refusal(target, headers(name, token))).code() == grpc.StatusCode.UNAVAILABLE
