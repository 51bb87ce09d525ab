"""Fuzzes every RPC of every served version with random and malformed requests, checking the error contract.

The RPCs are the methods of each version's ``FleetStateService`` in ``VERSIONS``, read from the service
descriptor so that RPCs added later are fuzzed too (of a server stream, only its start, where errors come).
For each, hypothesis sends well-typed requests with adversarial field values and raw request bytes that may
not parse (``strategies.py``) to one in-process emulator with the demo scenario, and checks API.md section
3: never ``UNKNOWN`` or ``INTERNAL``; every error carries a ``google.rpc.Status`` trailer with the call's
code and message, exactly one ``ErrorInfo`` (UPPER_SNAKE reason, a domain, the flow id in its metadata), a
``RequestInfo`` with that flow id, a ``BadRequest`` with violations for ``INVALID_ARGUMENT`` and a
``ResourceInfo`` for ``NOT_FOUND`` other than of a page token; bytes that do not parse get
``INVALID_ARGUMENT`` with ``REQUEST_MALFORMED``, and only they do; every response has one ``x-flow-id``
header (the client's own when it sent one), which errors carry. The emulator serves the whole module on an
event loop of its own, which the synchronous hypothesis tests run for each call.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import re
import string
from collections.abc import Awaitable, Iterable, Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2 as pb
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2_grpc as pb_grpc
from fleet_emulator.api.versions import VERSIONS
from fleet_emulator.domain.flow import FLOW_ID_HEADER
from fleet_emulator.server import Emulator, Settings
from tests.api.strategies import Seeds, malformed_bodies, typed_requests
from tests.rich_errors import details_of, error_info, rich_status

CALL_TIMEOUT = 10.0
# Errors come before a stream's first message, which every stream of the demo scenario sends at once.
STREAM_START_WAIT = 2.0
UPPER_SNAKE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")
PAGE_TOKEN_REASONS = ("PAGE_TOKEN_NOT_FOUND", "PAGE_TOKEN_EXPIRED")
flow_ids = st.none() | st.text(
    alphabet=string.ascii_letters + string.digits + "._:-", min_size=1, max_size=128
)


@dataclass(frozen=True)
class Rpc:
    version: str
    method: MethodDescriptor

    def __str__(self) -> str:
        return f"{self.version}.{self.method.name}"

    @property
    def path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    def parses(self, body: bytes) -> bool:
        try:
            message_factory.GetMessageClass(self.method.input_type).FromString(body)
        except DecodeError:
            return False
        return True


RPCS = [
    Rpc(version.name, method)
    for version in VERSIONS
    for method in descriptor_pool.Default().FindServiceByName(version.service_name).methods
]
# About 2400 calls per test function, shared by the RPCs (at least 50 each), so that the module takes about
# 25 s however many RPCs there are (200 examples for each of 21 RPCs took 45 s).
FUZZ = settings(max_examples=max(50, 2400 // len(RPCS)), deadline=None, derandomize=True, database=None)


@dataclass(frozen=True)
class Reply:
    headers: grpc.aio.Metadata
    error: grpc.aio.AioRpcError | None


class Harness:
    """The emulator's event loop (run by the tests, idle in between), a channel to the emulator, its seeds.

    Not a dataclass, so that falsifying examples show it in one line.
    """

    def __init__(self, runner: asyncio.Runner, channel: grpc.aio.Channel, seeds: Seeds) -> None:
        self.runner = runner
        self.channel = channel
        self.seeds = seeds

    def call(self, rpc: Rpc, body: bytes, flow_id: str | None) -> Reply:
        return self.runner.run(_call(self.channel, rpc, body, flow_id))


async def _call(channel: grpc.aio.Channel, rpc: Rpc, body: bytes, flow_id: str | None) -> Reply:
    """One call with the body's bytes sent as they are (no serializer); of a server stream, only its start."""
    assert not rpc.method.client_streaming, f"{rpc}: teach _call to send a stream"
    metadata = () if flow_id is None else ((FLOW_ID_HEADER, flow_id),)
    call: grpc.aio.Call
    if rpc.method.server_streaming:
        call = channel.unary_stream(rpc.path, None, None)(body, metadata=metadata, timeout=CALL_TIMEOUT)
        answer: Awaitable[object] = asyncio.wait_for(call.read(), STREAM_START_WAIT)
    else:
        call = answer = channel.unary_unary(rpc.path, None, None)(
            body, metadata=metadata, timeout=CALL_TIMEOUT
        )
    try:
        with contextlib.suppress(TimeoutError):  # a stream that stays silent has not failed so far
            await answer
    except grpc.aio.AioRpcError as error:
        return Reply(error.initial_metadata(), error)
    finally:
        call.cancel()
    return Reply(await call.initial_metadata(), None)


def _collect(messages: Iterable[Message], found: dict[str, set[str]]) -> None:
    """The identifiers (``id``, ``*_id``, ``etag``) in the messages, nested ones too, by field name."""
    for message in messages:
        for field, value in message.ListFields():
            values = value if field.is_repeated else [value]
            identifier = field.name in ("id", "etag") or field.name.endswith("_id")
            if field.type == FieldDescriptor.TYPE_STRING and identifier:
                found[field.name].update(values)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                _collect(values, found)


async def _seeds(channel: grpc.aio.Channel) -> Seeds:
    """The identifiers of every fleet and vehicle of the scenario, and a first page token of each List RPC
    and fleet."""
    stub = pb_grpc.FleetStateServiceStub(channel)
    found: dict[str, set[str]] = collections.defaultdict(set)
    fleets = (await stub.ListFleets(pb.ListFleetsRequest(page_size=1000))).fleets
    _collect(fleets, found)
    tokens = [(await stub.ListFleets(pb.ListFleetsRequest(page_size=1))).next_page_token]
    for fleet in fleets:
        page = await stub.ListVehicles(pb.ListVehiclesRequest(fleet_id=fleet.id, page_size=1000))
        _collect(page.vehicles, found)
        first = await stub.ListVehicles(pb.ListVehiclesRequest(fleet_id=fleet.id, page_size=1))
        tokens.append(first.next_page_token)
    assert all(tokens), "the scenario needs two fleets or more, each with two vehicles or more"
    found["page_token"] = set(tokens)
    return Seeds(tuple(tuple(sorted(found[name])) for name in sorted(found)))


async def _start() -> tuple[Emulator, grpc.aio.Channel, Seeds]:
    emulator = Emulator(Settings(host="127.0.0.1", port=0, grace_seconds=0))
    await emulator.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{emulator.port}")
    return emulator, channel, await _seeds(channel)


async def _stop(emulator: Emulator, channel: grpc.aio.Channel) -> None:
    await channel.close(grace=None)
    await emulator.stop()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:  # not pytest-asyncio's loop
        emulator, channel, seeds = runner.run(_start())
        try:
            yield Harness(runner, channel, seeds)
        finally:
            runner.run(_stop(emulator, channel))


def check_contract(rpc: Rpc, body: bytes, sent_flow_id: str | None, reply: Reply) -> None:
    """The flow id header, the malformed-request rule and, on error, API.md section 3."""
    sent_back = reply.headers.get_all(FLOW_ID_HEADER)
    assert len(sent_back) == 1, (sent_back, reply.error)
    flow_id = sent_back[0]
    if sent_flow_id is not None:
        assert flow_id == sent_flow_id
    parses = rpc.parses(body)
    error = reply.error
    if error is None:
        assert parses, "request bytes that do not parse were accepted"
        return
    code = error.code()
    assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), (code, error.details())
    status = rich_status(error)
    assert (status.code, status.message) == (code.value[0], error.details())
    info = error_info(error)
    assert UPPER_SNAKE.fullmatch(info.reason), info.reason
    assert info.domain
    assert info.metadata["flow_id"] == flow_id
    assert [r.request_id for r in details_of(status, error_details_pb2.RequestInfo)] == [flow_id]
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        assert any(b.field_violations for b in details_of(status, error_details_pb2.BadRequest)), status
    if code is grpc.StatusCode.NOT_FOUND and info.reason not in PAGE_TOKEN_REASONS:
        assert details_of(status, error_details_pb2.ResourceInfo), status
    if parses:
        assert info.reason != "REQUEST_MALFORMED", status
    else:
        assert (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_MALFORMED"), status


@pytest.mark.parametrize("rpc", RPCS, ids=str)
@FUZZ
@given(data=st.data())
def test_well_typed_requests_with_adversarial_values(harness: Harness, rpc: Rpc, data: st.DataObject) -> None:
    request = data.draw(typed_requests(rpc.method.input_type, harness.seeds), label="request")
    flow_id = data.draw(flow_ids, label="x-flow-id")
    body = request.SerializeToString()
    check_contract(rpc, body, flow_id, harness.call(rpc, body, flow_id))


@pytest.mark.parametrize("rpc", RPCS, ids=str)
@FUZZ
@given(data=st.data())
def test_malformed_request_bytes(harness: Harness, rpc: Rpc, data: st.DataObject) -> None:
    body = data.draw(malformed_bodies(rpc.method.input_type, harness.seeds), label="body")
    flow_id = data.draw(flow_ids, label="x-flow-id")
    check_contract(rpc, body, flow_id, harness.call(rpc, body, flow_id))
