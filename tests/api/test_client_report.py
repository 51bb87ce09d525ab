"""The client report through gRPC on both backends: a deliberately careless client breaks every practice of
seeds 000 and 001 and the report names exactly those, each with the calls that show it; a careful client
does the same things properly and the report is empty.

Each test works in a namespace of its own with the auth mode ``jwt``, so that the clients are the subjects
of their tokens; every call sends a flow id of its own, by which the test names the calls it expects in
the report. Waiting is done by moving the emulator's virtual clock.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2, field_mask_pb2
from google.rpc import error_details_pb2

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as adm
from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2 as v1beta4
from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2_grpc as v1beta4_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from tests.api.conftest import Target
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE, next_message

GET_SEED_VEHICLE = pb.GetVehicleRequest(vehicle_id=SEED_VEHICLE)
HAMBURG = pb.GetFleetRequest(fleet_id="hamburg")
LOCK = pb.LockVehicleRequest(vehicle_id=SEED_VEHICLE)
WAKE_UP = pb.WakeUpVehicleRequest(vehicle_id=SEED_VEHICLE)
HONK = pb.HonkHornRequest(vehicle_id=SEED_VEHICLE)


def duration(seconds: float) -> duration_pb2.Duration:
    result = duration_pb2.Duration()
    result.FromTimedelta(timedelta(seconds=seconds))
    return result


@dataclass
class Client:
    """A client of the emulated API in the test's namespace, identified by the subject of its token."""

    target: Target
    namespace: str
    subject: str
    token: str = ""
    soc: float = 50
    waited_s: float = 0
    received: list[pb.StreamResponse] = field(default_factory=list)

    def metadata(self, flow_id: str) -> tuple[tuple[str, str], ...]:
        return (
            ("x-emulator-namespace", self.namespace),
            ("x-flow-id", flow_id),
            ("authorization", f"Bearer {self.token}"),
        )

    @property
    def admin_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-emulator-namespace", self.namespace),)

    async def log_in(self, flow_id: str, lifetime_s: float = 1800) -> None:
        request = adm.IssueTokenRequest(subject=self.subject, lifetime=duration(lifetime_s))
        metadata = (*self.admin_metadata, ("x-flow-id", flow_id))
        self.token = (await self.target.admin.IssueToken(request, metadata=metadata)).access_token

    async def wait(self, seconds: float) -> None:
        request = adm.AdvanceClockRequest(by=duration(seconds))
        await self.target.admin.AdvanceClock(request, metadata=self.admin_metadata)
        self.waited_s += seconds

    async def add_fault(self, fault: adm.Fault) -> None:
        await self.target.admin.CreateFault(adm.CreateFaultRequest(fault=fault), metadata=self.admin_metadata)

    async def fail_next_get_fleet(self, retry_after_s: float) -> None:
        """The next GetFleet fails with UNAVAILABLE and a RetryInfo."""
        retry = any_pb2.Any()
        retry.Pack(error_details_pb2.RetryInfo(retry_delay=duration(retry_after_s)))
        fail = adm.FailCall(code=grpc.StatusCode.UNAVAILABLE.value[0], message="maintenance", details=[retry])
        await self.add_fault(adm.Fault(method="GetFleet", times=1, fail=fail))

    async def lose_next_honk(self) -> None:
        """The next HonkHorn runs, but its answer is lost: DEADLINE_EXCEEDED."""
        poor = adm.PoorConnection(executed=True)
        await self.add_fault(adm.Fault(method="HonkHorn", times=1, poor_connection=poor))

    async def put_to_sleep(self) -> None:
        vehicle = pb.Vehicle(id=SEED_VEHICLE, connectivity=pb.CONNECTIVITY_STATE_ASLEEP)
        mask = field_mask_pb2.FieldMask(paths=["connectivity"])
        request = adm.UpdateVehicleRequest(vehicle=vehicle, update_mask=mask)
        await self.target.admin.UpdateVehicle(request, metadata=self.admin_metadata)

    async def publish(self) -> None:
        """One BatteryChanged event on the hamburg stream."""
        self.soc -= 1
        vehicle = pb.Vehicle(id=SEED_VEHICLE, battery=pb.Battery(state_of_charge_percent=self.soc))
        mask = field_mask_pb2.FieldMask(paths=["battery.state_of_charge_percent"])
        request = adm.UpdateVehicleRequest(vehicle=vehicle, update_mask=mask)
        await self.target.admin.UpdateVehicle(request, metadata=self.admin_metadata)

    async def stream(self, flow_id: str, events: int, last_message_id: str | None = None) -> None:
        """Open a stream, read its messages until ``events`` events were published and received, close it.

        Reading one message more than the test needs journaled makes sure the server journaled those: it
        journals a message when the stream resumes to send the next one.
        """
        request = pb.StreamRequest(event_id=HAMBURG_EVENTS, last_message_id=last_message_id)
        call = self.target.api.StreamVehicleEvents(request, metadata=self.metadata(flow_id))
        try:
            if last_message_id is None:
                self.received.append(await next_message(call))  # the position, without an event
            for _ in range(events):
                await self.publish()
                self.received.append(await next_message(call))
        finally:
            call.cancel()

    async def expect_error(self, call: Any, code: grpc.StatusCode) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await call
        assert failed.value.code() is code

    async def report(self) -> dict[str, list[str]]:
        """Per practice, the flow ids of the calls the report names for this client."""
        request = adm.GetClientReportRequest()
        response = await self.target.admin.GetClientReport(request, metadata=self.admin_metadata)
        assert [c.client for c in response.clients] in ([], [self.subject])
        findings = response.clients[0].findings if response.clients else ()
        return {f.practice: [c.flow_id for c in f.calls] for f in findings}


@pytest.fixture
async def namespace(target: Target) -> str:
    """A new namespace whose calls need a token of the emulator."""
    name = f"report-{uuid.uuid4().hex[:12]}"
    policies = adm.Policies(auth_mode=adm.AUTH_MODE_JWT)
    request = adm.UpdatePoliciesRequest(
        policies=policies, update_mask=field_mask_pb2.FieldMask(paths=["auth_mode"])
    )
    await target.admin.UpdatePolicies(request, metadata=(("x-emulator-namespace", name),))
    return name


async def test_the_report_names_every_practice_a_careless_client_broke(
    target: Target, namespace: str
) -> None:
    client = Client(target, namespace, "careless")
    await client.log_in("token-1")
    await client.log_in("token-2")  # the first token has 30 minutes left
    api = target.api

    await api.GetVehicle(GET_SEED_VEHICLE, metadata=client.metadata("read-1"))
    await api.GetVehicle(GET_SEED_VEHICLE, metadata=client.metadata("read-2"))  # 0 s later

    await client.fail_next_get_fleet(retry_after_s=5)
    await client.expect_error(
        api.GetFleet(HAMBURG, metadata=client.metadata("fleet-1")), grpc.StatusCode.UNAVAILABLE
    )
    await api.GetFleet(HAMBURG, metadata=client.metadata("fleet-2"))  # without waiting 5 s

    await client.stream("stream-1", events=2)
    await client.stream("stream-2", events=0)  # the events published in between are lost

    old = v1beta4_grpc.FleetStateServiceStub(target.channel)
    await old.ListFleets(v1beta4.ListFleetsRequest(), metadata=client.metadata("old-1"))

    await client.put_to_sleep()
    asleep = grpc.StatusCode.FAILED_PRECONDITION
    # Locked before it was woken up, then right after the wake-up, before it came online.
    await client.expect_error(api.LockVehicle(LOCK, metadata=client.metadata("lock-1")), asleep)
    await api.WakeUpVehicle(WAKE_UP, metadata=client.metadata("wake-1"))
    await client.expect_error(api.LockVehicle(LOCK, metadata=client.metadata("lock-2")), asleep)
    await client.wait(60)  # now it is online

    await client.lose_next_honk()
    lost = api.HonkHorn(HONK, metadata=client.metadata("honk-1"))
    await client.expect_error(lost, grpc.StatusCode.DEADLINE_EXCEEDED)
    await api.HonkHorn(HONK, metadata=client.metadata("honk-2"))  # honks a second time

    await client.log_in("token-3", lifetime_s=60)
    await client.wait(120)
    expired = api.GetVehicle(GET_SEED_VEHICLE, metadata=client.metadata("late-1"))
    await client.expect_error(expired, grpc.StatusCode.UNAUTHENTICATED)

    assert await client.report() == {
        "POLLING_TOO_OFTEN": ["read-2"],
        "TOKEN_RENEWED_TOO_EARLY": ["token-2", "token-3"],
        "EXPIRED_TOKEN_USED": ["late-1"],
        "RETRIED_TOO_SOON": ["fleet-2"],
        "UNSAFE_COMMAND_RETRY": ["honk-2"],
        "COMMAND_TO_SLEEPING_VEHICLE": ["lock-1", "lock-2"],
        "STREAM_REOPENED_WITHOUT_RESUME": ["stream-2"],
        "DEPRECATED_VERSION_USED": ["old-1"],
    }


async def test_the_report_of_a_careful_client_is_empty(target: Target, namespace: str) -> None:
    client = Client(target, namespace, "careful")
    await client.log_in("token-1")
    api = target.api

    await api.GetVehicle(GET_SEED_VEHICLE, metadata=client.metadata("read-1"))
    await client.wait(5)
    await api.GetVehicle(GET_SEED_VEHICLE, metadata=client.metadata("read-2"))

    await client.fail_next_get_fleet(retry_after_s=5)
    await client.expect_error(
        api.GetFleet(HAMBURG, metadata=client.metadata("fleet-1")), grpc.StatusCode.UNAVAILABLE
    )
    await client.wait(5)
    await api.GetFleet(HAMBURG, metadata=client.metadata("fleet-2"))

    await client.stream("stream-1", events=2)
    await client.stream("stream-2", events=1, last_message_id=client.received[-1].message_id)

    await api.ListFleets(pb.ListFleetsRequest(), metadata=client.metadata("fleets-1"))

    await client.put_to_sleep()
    await api.WakeUpVehicle(WAKE_UP, metadata=client.metadata("wake-1"))
    await client.wait(60)  # the longest wake-up delay
    online = await api.GetVehicle(GET_SEED_VEHICLE, metadata=client.metadata("read-3"))
    assert online.vehicle.connectivity == pb.CONNECTIVITY_STATE_ONLINE
    await api.LockVehicle(LOCK, metadata=client.metadata("lock-1"))

    await client.lose_next_honk()
    honk = pb.HonkHornRequest(vehicle_id=SEED_VEHICLE, idempotency_key=str(uuid.uuid4()))
    await client.expect_error(
        api.HonkHorn(honk, metadata=client.metadata("honk-1")), grpc.StatusCode.DEADLINE_EXCEEDED
    )
    retried = await api.HonkHorn(honk, metadata=client.metadata("honk-2"))  # the same key: no second honk
    assert retried.result.execution_count == 1

    await client.wait(30 * 60 - client.waited_s - 30)  # 30 s before the token expires
    await client.log_in("token-2")
    await api.GetVehicle(GET_SEED_VEHICLE, metadata=client.metadata("read-4"))

    assert await client.report() == {}
    assert [bool(m.HasField("event")) for m in client.received] == [False, True, True, True]
