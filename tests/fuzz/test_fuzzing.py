"""The fuzzing engine's own checks, on made-up replies: what it must flag and what it must let pass.

``check_contract`` flags ``INTERNAL`` (with the server's traceback), trailers beyond gRPC's default 8 KiB
(counting ``grpc-message`` percent-encoded), the transport's ``RESOURCE_EXHAUSTED`` in place of the
emulator's status, a missing rich status or flow id header, and accepted bytes that do not parse; it lets a
proper ``NOT_FOUND`` pass. The log parsing, the traceback signature, the shrinking of requests and the
histogram are checked too. These run in ``make test``; they start no emulator.
"""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.protobuf.any_pb2 import Any as AnyMessage
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from tests.fuzz.fuzzing import (
    ADMIN_RPCS,
    FUZZED,
    HELPER,
    METADATA_SOFT_LIMIT,
    PROBE,
    RPCS,
    Reply,
    Rpc,
    Tally,
    Violation,
    _shrink_message,
    check_contract,
    log_records,
    signature,
    trailer_size,
)
from tests.rich_errors import DETAILS_KEY

FLOW_ID = "flow-1"
GET_VEHICLE = next(rpc for rpc in RPCS if str(rpc) == "v2.GetVehicle")
TRACEBACK = """fleet_emulator.api.call_scope: bug while serving a call (flow id flow-1)
Traceback (most recent call last):
  File "/src/fleet_emulator/api/call_scope.py", line 142, in serve
    response = await behaviour(request, context)
  File "/src/fleet_emulator/api/admin.py", line 161, in SetClock
    await self.clock.set(request.time.ToDatetime(tzinfo=UTC))
ValueError: year 10000 is out of range"""


def _packed(message: Message) -> AnyMessage:
    packed = AnyMessage()
    packed.Pack(message)
    return packed


def _reply(
    code: grpc.StatusCode,
    message: str,
    details: list[Message] | None = None,
    headers: tuple[tuple[str, str], ...] = (("x-flow-id", FLOW_ID),),
    rich: bool = True,
) -> Reply:
    if details is None:
        details = [
            error_details_pb2.ErrorInfo(
                reason="VEHICLE_NOT_FOUND", domain="fleet-emulator.moia.io", metadata={"flow_id": FLOW_ID}
            ),
            error_details_pb2.RequestInfo(request_id=FLOW_ID),
            error_details_pb2.ResourceInfo(resource_type="vehicle", resource_name="v-1"),
        ]
    status = status_pb2.Status(code=code.value[0], message=message, details=[_packed(d) for d in details])
    trailers = grpc.aio.Metadata((DETAILS_KEY, status.SerializeToString())) if rich else grpc.aio.Metadata()
    initial = grpc.aio.Metadata(*headers)
    return Reply(initial, grpc.aio.AioRpcError(code, initial, trailers, message, None), None)


def _violation(reply: Reply, body: bytes = b"") -> Violation:
    with pytest.raises(Violation) as raised:
        check_contract(GET_VEHICLE, body, FLOW_ID, reply, lambda flow_id: TRACEBACK)
    return raised.value


def test_a_proper_not_found_passes() -> None:
    check_contract(
        GET_VEHICLE, b"", FLOW_ID, _reply(grpc.StatusCode.NOT_FOUND, "no such vehicle"), lambda flow_id: None
    )


def test_internal_is_flagged_with_the_servers_traceback() -> None:
    violation = _violation(_reply(grpc.StatusCode.INTERNAL, "internal error in the emulator"))
    assert (violation.kind, violation.code) == ("INTERNAL", "INTERNAL")
    assert "year 10000 is out of range" in violation.traceback


def test_unknown_is_flagged() -> None:
    assert _violation(_reply(grpc.StatusCode.UNKNOWN, "Unexpected error")).kind == "UNKNOWN"


def test_trailers_beyond_8_kib_are_flagged_counting_the_message_percent_encoded() -> None:
    short_enough = "é" * 100
    check_contract(
        GET_VEHICLE, b"", FLOW_ID, _reply(grpc.StatusCode.NOT_FOUND, short_enough), lambda flow_id: None
    )
    # 1,500 characters, 3,000 bytes of UTF-8, 9,000 on the wire
    reply = _reply(grpc.StatusCode.NOT_FOUND, "é" * 1500)
    assert reply.error is not None
    assert trailer_size(reply.error) > METADATA_SOFT_LIMIT > 1500 * 2
    assert _violation(reply).kind == "trailers over 8 KiB"


def test_the_transports_refusal_of_large_trailers_is_flagged() -> None:
    message = "Stream removed (received metadata size exceeds soft limit (12247 vs. 8192)"
    reply = _reply(grpc.StatusCode.RESOURCE_EXHAUSTED, message, rich=False)
    assert _violation(reply).kind == "trailers over the client's metadata limit"


def test_a_status_without_details_or_flow_id_is_flagged() -> None:
    assert _violation(_reply(grpc.StatusCode.NOT_FOUND, "gone", rich=False)).kind == "no rich status"
    assert _violation(_reply(grpc.StatusCode.NOT_FOUND, "gone", headers=())).kind == "x-flow-id header"
    no_request_info = [
        error_details_pb2.ErrorInfo(reason="VEHICLE_NOT_FOUND", domain="d", metadata={"flow_id": FLOW_ID}),
        error_details_pb2.ResourceInfo(resource_type="vehicle"),
    ]
    reply = _reply(grpc.StatusCode.NOT_FOUND, "gone", details=no_request_info)
    assert _violation(reply).kind == "RequestInfo without the flow id"


def test_accepting_bytes_that_do_not_parse_is_flagged() -> None:
    ok = Reply(grpc.aio.Metadata(("x-flow-id", FLOW_ID)), None, b"")
    assert _violation(ok, body=b"\xff").kind == "malformed request accepted"


def test_the_admin_rpcs_come_from_the_descriptor() -> None:
    names = {rpc.method.name for rpc in ADMIN_RPCS}
    assert {"CreateFault", "SetClock", "AdvanceClock", "ResetEmulator", "LoadScenario"} <= names
    assert set(ADMIN_RPCS) <= set(RPCS)
    assert all(isinstance(rpc, Rpc) and rpc.admin for rpc in ADMIN_RPCS)


def test_log_records_and_signatures() -> None:
    log = f"2026-12-02 06:00:00,001 INFO x: started\n2026-12-02 06:00:01,002 ERROR {TRACEBACK}\n"
    records = log_records(log)
    assert len(records) == 2
    assert records[1].endswith("ValueError: year 10000 is out of range")
    assert signature(records[1]) == "admin.py:161 SetClock ValueError: year # is out of range"


def test_shrinking_keeps_only_what_the_finding_needs() -> None:
    request = v2.UpdateVehicleRequest(
        vehicle=v2.Vehicle(id="x" * 64, label="L-1", fleet_id="hamburg"),
        update_mask=field_mask_pb2.FieldMask(paths=["label", "properties"]),
    )

    def still(candidate: Message) -> bool:
        assert isinstance(candidate, v2.UpdateVehicleRequest)
        return "x" in candidate.vehicle.id

    shrunk = _shrink_message(request, still)
    assert shrunk == v2.UpdateVehicleRequest(vehicle=v2.Vehicle(id="x" * 8))


def test_the_histogram_counts_per_backend_code_and_reason() -> None:
    tally = Tally()
    ok = Reply(grpc.aio.Metadata(), None, b"")
    for _ in range(3):
        tally.add("memory", FUZZED, _reply(grpc.StatusCode.NOT_FOUND, "gone"))
    tally.add("redis", FUZZED, ok)
    tally.add("redis", HELPER, ok)
    tally.add("redis", PROBE, _reply(grpc.StatusCode.INTERNAL, "injected"))
    tally.add("redis", FUZZED, _reply(grpc.StatusCode.UNKNOWN, "unexpected"))
    text = tally.render()
    assert tally.total() == 6
    assert "backend memory: 3 checked calls (fuzzed 3, probe 0, history 0)" in text
    assert "VEHICLE_NOT_FOUND" in text
    assert "backend redis: 3 checked calls (fuzzed 2, probe 1, history 0)" in text
    assert "INTERNAL or UNKNOWN: 1 calls (and 1 on probes, which fault rules may inject)" in text
