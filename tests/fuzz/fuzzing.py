"""The fuzzing engine shared by the short in-process fuzz test and the long profile against real processes.

``RPCS`` are the methods of every served API version's ``FleetStateService`` and of the admin service, read
from the descriptors so that RPCs added later are fuzzed too (of a server stream, only its start, where errors
come). An ``Example`` is one fuzzed call: the request (well typed, near-valid or with adversarial values, or
raw bytes that may not parse; ``tests/api/strategies.py``), a flow id or none, maybe a clock to set first (the
edges of the virtual clock's range, 1970-01-02 and 9000-01-01, and times beyond it, which the emulator
refuses), and for admin RPCs maybe an invalid namespace header and a history of API calls made first in the
namespace (so that the journal, the client report and the state hold something). ``Fuzzer.run`` sends it: API
examples in the default namespace, which never has fault rules; admin examples each in a throwaway namespace
(``fuzz-<run>-<counter>``), deleted afterwards when the admin service can, so that the fault rules, scenarios
and policies they create never reach another example. After a successful ``CreateFault`` it makes one API call
in that namespace that the rule matches (the probe), which may fail with any code the rule injects but must
still carry a proper status. The real clock is restored after each example that moved it. Server streams go
through grpc's synchronous client (``Channels`` says why). ``check_contract`` checks each reply against API.md
section 3 and raises a ``Violation``: never ``UNKNOWN`` or ``INTERNAL`` (with the server's traceback of the
flow id when it can be found); every error carries a ``google.rpc.Status`` trailer with the call's code and
message, exactly one ``ErrorInfo`` (UPPER_SNAKE reason, a domain, the flow id in its metadata), a
``RequestInfo`` with that flow id, a ``BadRequest`` with violations for ``INVALID_ARGUMENT`` and a
``ResourceInfo`` for ``NOT_FOUND`` other than of a page token; the trailers fit gRPC's default 8 KiB metadata
limit of clients (else the client gets the transport's ``RESOURCE_EXHAUSTED`` instead of the emulator's
status, or does at random); bytes that do not parse get ``INVALID_ARGUMENT`` with ``REQUEST_MALFORMED``, and
only they do; every response has one ``x-flow-id`` header (the client's own when it sent one). ``Tally``
counts the calls per backend, code and reason for the long profile's histogram, ``Findings`` groups its
violations and shrinks each to a small reproducer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import copy
import dataclasses
import functools
import importlib.resources
import itertools
import logging
import re
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool, message_factory, text_format, timestamp_pb2
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2, status_pb2
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2 as pb
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2_grpc as pb_grpc
from fleet_emulator.api.versions import VERSIONS
from fleet_emulator.domain.flow import FLOW_ID_HEADER
from fleet_emulator.domain.namespaces import NAMESPACE_HEADER
from tests.api.strategies import (
    CLOCK_EARLIEST,
    CLOCK_LATEST,
    INVALID_NAMESPACES,
    NOW_ISH,
    YEAR_1,
    YEAR_9999_END,
    Seeds,
    malformed_bodies,
    typed_requests,
)
from tests.rich_errors import DETAILS_KEY

ADMIN = "admin"
ADMIN_SERVICE = admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name
CALL_TIMEOUT = 10.0
PROBE_TIMEOUT = 1.0  # a probe may meet a latency rule of any delay
# Errors come at once, before a stream's first message; a stream still silent after this (one resuming from
# the current position, waiting for new events) has not failed so far.
STREAM_START_WAIT = 0.5
UPPER_SNAKE = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")
PAGE_TOKEN_REASONS = ("PAGE_TOKEN_NOT_FOUND", "PAGE_TOKEN_EXPIRED")
# gRPC's default soft limit on the metadata a client receives: between it and the hard limit (16 KiB)
# clients drop calls at random with RESOURCE_EXHAUSTED, above that always. gRPC counts each entry as its
# key, its value (binary values unencoded, grpc-message percent-encoded) and 32 bytes.
METADATA_SOFT_LIMIT = 8 * 1024
METADATA_ENTRY_OVERHEAD = 32
TRANSPORT_LIMIT_TEXT = "metadata size exceeds"
TYPED, MALFORMED = "typed", "malformed"
KINDS = (TYPED, MALFORMED)
FIRST_STATUS_BYTE, LAST_STATUS_BYTE = 0x20, 0x7E  # grpc-message: other bytes and '%' are percent-encoded
# Times the clock is set to before some examples: the edges of the virtual clock's range and a realistic
# now, which the emulator accepts, and valid Timestamps outside that range (year 1, the Unix epoch, the last
# nanosecond of year 9999), which it refuses, leaving the clock as it was.
CLOCK_EDGES = (
    timestamp_pb2.Timestamp(seconds=CLOCK_EARLIEST),
    timestamp_pb2.Timestamp(seconds=NOW_ISH),
    timestamp_pb2.Timestamp(seconds=CLOCK_LATEST),
    timestamp_pb2.Timestamp(seconds=CLOCK_EARLIEST + 1, nanos=999_999_999),
    timestamp_pb2.Timestamp(seconds=CLOCK_LATEST - 1, nanos=999_999_999),
    timestamp_pb2.Timestamp(seconds=YEAR_1),
    timestamp_pb2.Timestamp(seconds=0),
    timestamp_pb2.Timestamp(seconds=YEAR_9999_END, nanos=999_999_999),
)
flow_ids = st.none() | st.text(
    alphabet=string.ascii_letters + string.digits + "._:-", min_size=1, max_size=128
)
# The long profile: random seeds (not derandomized), no example database, no deadline; ``max_examples``
# is set per test from the number of calls asked for.
LONG_PROFILE = "fuzz"
settings.register_profile(
    LONG_PROFILE,
    deadline=None,
    database=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=list(HealthCheck),
)


@dataclass(frozen=True)
class Rpc:
    version: str  # an API version's name, or ADMIN
    method: MethodDescriptor

    def __str__(self) -> str:
        return f"{self.version}.{self.method.name}"

    @property
    def admin(self) -> bool:
        return self.version == ADMIN

    @property
    def path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    def request_class(self) -> type[Message]:
        cls: type[Message] = message_factory.GetMessageClass(self.method.input_type)
        return cls

    def parses(self, body: bytes) -> bool:
        try:
            self.request_class().FromString(body)
        except DecodeError:
            return False
        return True


def _service_methods(service: str) -> list[MethodDescriptor]:
    return list(descriptor_pool.Default().FindServiceByName(service).methods)


API_RPCS = [
    Rpc(version.name, method) for version in VERSIONS for method in _service_methods(version.service_name)
]
LATEST = VERSIONS[-1].name
ADMIN_RPCS = [Rpc(ADMIN, method) for method in _service_methods(ADMIN_SERVICE)]
RPCS = API_RPCS + ADMIN_RPCS
_ADMIN_BY_NAME = {rpc.method.name: rpc for rpc in ADMIN_RPCS}


def admin_rpc(name: str) -> Rpc | None:
    return _ADMIN_BY_NAME.get(name)


def moves_clock(rpc: Rpc) -> bool:
    return rpc.admin and "Clock" in rpc.method.name and rpc.method.name not in ("GetClock", "UseRealClock")


# --- examples ---------------------------------------------------------------------------------------------


def _abbreviated(message: Message, limit: int = 120) -> Message:
    """A copy of the message with every string or bytes value longer than ``limit`` cut, for reports."""
    out = copy.deepcopy(message)

    def cut(value: Any) -> Any:
        if isinstance(value, str) and len(value) > limit:
            return f"{value[:40]}…<{len(value)} chars>"
        if isinstance(value, bytes) and len(value) > limit:
            return value[:40] + f"...<{len(value)} bytes>".encode()
        return value

    def walk(m: Message) -> None:
        for fd, value in m.ListFields():
            message_type = fd.message_type
            if message_type is not None and message_type.GetOptions().map_entry:
                value_is_message = message_type.fields_by_name["value"].message_type is not None
                for key in list(value):
                    if value_is_message:
                        walk(value[key])
                    else:
                        value[key] = cut(value[key])
            elif fd.type == FieldDescriptor.TYPE_MESSAGE:
                for item in value if fd.is_repeated else [value]:
                    walk(item)
            elif fd.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
                if fd.is_repeated:
                    value[:] = [cut(v) for v in value]
                else:
                    setattr(m, fd.name, cut(value))

    walk(out)
    return out


def render_request(request: Message) -> str:
    return text_format.MessageToString(_abbreviated(request), as_utf8=True, as_one_line=True) or "(empty)"


@dataclass(frozen=True, repr=False)
class Example:
    """One fuzzed call: to ``rpc``, of ``body`` (``request`` serialized, or raw bytes when it is None)."""

    rpc: Rpc
    body: bytes
    request: Message | None
    flow_id: str | None
    clock: timestamp_pb2.Timestamp | None
    bad_namespace: str | None  # sent instead of a fresh namespace (admin RPCs only)
    history: tuple[tuple[Rpc, Message], ...] = ()  # API calls made first in the admin RPC's namespace

    def __repr__(self) -> str:
        return self.describe()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """How hypothesis shows a falsifying example: described, long values cut."""
        printer.text(self.describe())

    def describe(self) -> str:
        if self.request is not None:
            what = render_request(self.request)
        else:
            shown = self.body if len(self.body) <= 200 else self.body[:200] + b"..."
            parsed = "parses" if self.rpc.parses(self.body) else "does not parse"
            what = f"raw {len(self.body)} bytes ({parsed}): {shown!r}"
        extra = []
        if self.clock is not None:
            extra.append(f"clock set first to {self.clock.ToJsonString()}")
        if self.bad_namespace is not None:
            extra.append(f"{NAMESPACE_HEADER}: {self.bad_namespace!r}")
        if self.flow_id is not None and len(self.flow_id) > 40:
            extra.append(f"x-flow-id of {len(self.flow_id)} chars")
        elif self.flow_id is not None:
            extra.append(f"x-flow-id: {self.flow_id}")
        for rpc, request in self.history:
            extra.append(f"after {rpc.path} {{{render_request(request)}}} in its namespace")
        return f"{self.rpc.path} {{{what}}}" + (f" [{'; '.join(extra)}]" if extra else "")

    def replace(self, **changes: Any) -> Example:
        """A copy with ``changes``; a new ``request`` brings its body."""
        if changes.get("request") is not None:
            changes["body"] = changes["request"].SerializeToString()
        return dataclasses.replace(self, **changes)


@st.composite
def examples(draw: st.DrawFn, rpc: Rpc, kind: str, seeds: Seeds) -> Example:
    """An example of ``kind`` (TYPED or MALFORMED) for the RPC."""
    request: Message | None = None
    if kind == TYPED:
        request = draw(typed_requests(rpc.method.input_type, seeds), label="request")
        body = request.SerializeToString()
    else:
        body = draw(malformed_bodies(rpc.method.input_type, seeds), label="body")
    flow_id = draw(flow_ids, label="x-flow-id")
    clock = draw(st.sampled_from((None,) * 4 * len(CLOCK_EDGES) + CLOCK_EDGES), label="clock")  # 1 in 5
    bad_namespace = None
    history: tuple[tuple[Rpc, Message], ...] = ()
    if rpc.admin:
        bad_namespace = draw(st.sampled_from((None,) * 24 + INVALID_NAMESPACES), label="namespace")
        some = st.lists(_api_calls(seeds), min_size=1, max_size=2).map(tuple)
        history = draw(st.one_of(st.just(()), st.just(()), st.just(()), some), label="history")  # 1 in 4
    return Example(rpc, body, request, flow_id, clock, bad_namespace, history)


@functools.cache
def _api_calls(seeds: Seeds) -> st.SearchStrategy[tuple[Rpc, Message]]:
    """Well-typed calls of any API RPC, for the history of an admin example (its journal, its state)."""
    return st.sampled_from(API_RPCS).flatmap(
        lambda rpc: typed_requests(rpc.method.input_type, seeds).map(lambda request: (rpc, request))
    )


# --- calls ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    headers: grpc.aio.Metadata
    error: grpc.aio.AioRpcError | None
    response: bytes | None  # of a server stream, its first message (None when it stayed silent)


@dataclass(frozen=True)
class Channels:
    """An asyncio channel for unary calls and a synchronous one for server streams, to one address.

    grpc.aio's client now and then (in bursts, up to half of the calls) loses the response headers of a
    server stream that fails at once, which grpc's synchronous client never does (0 of thousands, measured
    side by side against one emulator process): server streams go through the synchronous client, in a
    thread, so that the event loop keeps running (an in-process emulator serves on it)."""

    unary: grpc.aio.Channel
    streams: grpc.Channel

    @classmethod
    def open(cls, address: str) -> Channels:
        """Both channels; call it on the event loop that will run the calls."""
        return cls(grpc.aio.insecure_channel(address), grpc.insecure_channel(address))

    async def close(self) -> None:
        self.streams.close()
        await self.unary.close(grace=None)


async def call(
    channels: Channels,
    rpc: Rpc,
    body: bytes,
    flow_id: str | None,
    namespace: str | None = None,
    within_s: float = CALL_TIMEOUT,
) -> Reply:
    """One call with the body's bytes sent as they are (no serializer); of a server stream, only its start."""
    assert not rpc.method.client_streaming, f"{rpc}: teach call() to send a stream"
    metadata: list[tuple[str, str]] = []
    if flow_id is not None:
        metadata.append((FLOW_ID_HEADER, flow_id))
    if namespace is not None:
        metadata.append((NAMESPACE_HEADER, namespace))
    if rpc.method.server_streaming:
        return await asyncio.to_thread(_stream_start, channels.streams, rpc.path, body, metadata, within_s)
    unary = channels.unary.unary_unary(rpc.path, None, None)(body, metadata=metadata, timeout=within_s)
    try:
        response = await unary
    except grpc.aio.AioRpcError as error:
        return Reply(error.initial_metadata(), error, None)
    return Reply(await unary.initial_metadata(), None, response if isinstance(response, bytes) else None)


def _metadata(items: Any) -> grpc.aio.Metadata:
    return grpc.aio.Metadata(*((key, value) for key, value in items or ()))


def _stream_start(
    channel: grpc.Channel, path: str, body: bytes, metadata: list[tuple[str, str]], within_s: float
) -> Reply:
    """The start of a server stream through the synchronous client: its headers and first message, or its
    error; a stream still silent after ``STREAM_START_WAIT`` has not failed so far."""
    stream: Any = channel.unary_stream(path, None, None)(body, metadata=tuple(metadata), timeout=within_s)
    silent = threading.Timer(min(STREAM_START_WAIT, within_s), stream.cancel)
    silent.start()
    try:
        first = next(stream, None)
    except grpc.RpcError as error:
        failed: Any = error
        if failed.code() is grpc.StatusCode.CANCELLED and silent.finished.is_set():
            return Reply(_metadata(failed.initial_metadata()), None, None)
        initial, trailing = _metadata(failed.initial_metadata()), _metadata(failed.trailing_metadata())
        converted = grpc.aio.AioRpcError(failed.code(), initial, trailing, failed.details(), None)
        return Reply(initial, converted, None)
    finally:
        silent.cancel()
    stream.cancel()
    return Reply(_metadata(stream.initial_metadata()), None, first)


# --- the contract -----------------------------------------------------------------------------------------


class Violation(AssertionError):
    """A reply that breaks the contract: ``kind`` names the rule (stable, for grouping), ``detail`` how."""

    def __init__(self, kind: str, detail: str, code: str = "", reason: str = "", traceback: str = "") -> None:
        self.kind = kind
        self.detail = detail
        self.code = code
        self.reason = reason
        self.traceback = traceback
        text = f"{kind}: {detail}"
        if traceback:
            text += f"\nserver traceback:\n{traceback}"
        super().__init__(text)


Tracebacks = Callable[[str], str | None]


def _require(condition: bool, kind: str, detail: object, error: grpc.aio.AioRpcError | None = None) -> None:
    if not condition:
        code = error.code().name if error is not None else "OK"
        raise Violation(kind, f"{detail} (status {code}: {_short(error.details() if error else '')})", code)


def _short(text: str | None, limit: int = 300) -> str:
    text = text or ""
    return text if len(text) <= limit else f"{text[:limit]}…<{len(text)} chars>"


def _trailers(error: grpc.aio.AioRpcError) -> list[tuple[str, str | bytes]]:
    trailers: Any = error.trailing_metadata() or ()  # grpc's stubs type metadata loosely
    return [(key, value) for key, value in trailers]


def _encoded_length(message: str) -> int:
    """The length of a grpc-message value on the wire (percent-encoded UTF-8)."""
    return sum(
        1 if FIRST_STATUS_BYTE <= b <= LAST_STATUS_BYTE and b != ord("%") else 3 for b in message.encode()
    )


def trailer_size(error: grpc.aio.AioRpcError) -> int:
    """The size gRPC accounts for the error's trailers: grpc-status, grpc-message and the others."""
    size = len("grpc-status") + 2 + METADATA_ENTRY_OVERHEAD
    size += len("grpc-message") + _encoded_length(error.details() or "") + METADATA_ENTRY_OVERHEAD
    for key, value in _trailers(error):
        raw = value if isinstance(value, bytes) else value.encode()
        size += len(key) + len(raw) + METADATA_ENTRY_OVERHEAD
    return size


def _status(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    for key, value in _trailers(error):
        if key == DETAILS_KEY and isinstance(value, bytes):
            with contextlib.suppress(DecodeError):
                return status_pb2.Status.FromString(value)
    return None


def _unpacked(status: status_pb2.Status, kind: type[Any]) -> list[Any]:
    found = []
    for packed in status.details:
        if packed.Is(kind.DESCRIPTOR):
            message = kind()
            if packed.Unpack(message):
                found.append(message)
    return found


def _details_of(status: status_pb2.Status) -> str:
    """The details of a status in one short line: their types, and an ErrorInfo's reason."""
    names = []
    for packed in status.details:
        name = packed.type_url.rpartition("/")[2]
        info = error_details_pb2.ErrorInfo()
        if packed.Is(info.DESCRIPTOR) and packed.Unpack(info):
            name += f"({info.reason})"
        names.append(name)
    return f"details [{', '.join(names)}], {status.ByteSize()} B"


def reason_of(error: grpc.aio.AioRpcError | None) -> str:
    """The ErrorInfo reason of a reply, for the histogram."""
    if error is None:
        return "-"
    status = _status(error)
    if status is None:
        return "(no status details)"
    infos = _unpacked(status, error_details_pb2.ErrorInfo)
    return "/".join(sorted({i.reason for i in infos})) or "(no ErrorInfo)"


def _check_transport(error: grpc.aio.AioRpcError) -> None:
    """The client got the emulator's status, not the transport's refusal of oversized trailers."""
    refused = error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and TRANSPORT_LIMIT_TEXT in (
        error.details() or ""
    )
    _require(
        not refused, "trailers over the client's metadata limit", "the transport dropped the status", error
    )


def _check_trailer_size(error: grpc.aio.AioRpcError) -> None:
    size = trailer_size(error)
    status = _status(error)
    parts = f"grpc-message {_encoded_length(error.details() or '')} B encoded"
    if status is not None:
        parts += f", {DETAILS_KEY} {len(status.SerializeToString())} B"
    _require(
        size < METADATA_SOFT_LIMIT,
        "trailers over 8 KiB",
        f"{size} B of trailers ({parts}); gRPC clients drop such calls at random",
        error,
    )


def check_contract(
    rpc: Rpc, body: bytes, sent_flow_id: str | None, reply: Reply, tracebacks: Tracebacks
) -> None:
    """The flow id header, the malformed-request rule and, on error, API.md section 3 and the size of the
    trailers; raises a ``Violation``."""
    error = reply.error
    if error is not None:
        _check_transport(error)
    sent_back = reply.headers.get_all(FLOW_ID_HEADER) if reply.headers is not None else []
    _require(len(sent_back) == 1, "x-flow-id header", f"{len(sent_back)} x-flow-id headers", error)
    flow_id = str(sent_back[0])
    if sent_flow_id is not None:
        _require(
            flow_id == sent_flow_id, "x-flow-id header", f"{flow_id!r} instead of {sent_flow_id!r}", error
        )
    parses = rpc.parses(body)
    if error is None:
        _require(parses, "malformed request accepted", "request bytes that do not parse were accepted", error)
        return
    code = error.code()
    if code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL):
        trace = tracebacks(flow_id) or ""
        raise Violation(
            code.name, f"flow id {flow_id}: {_short(error.details())}", code.name, reason_of(error), trace
        )
    _check_status(error, flow_id)
    status = _status(error)
    assert status is not None  # checked by _check_status
    info = _unpacked(status, error_details_pb2.ErrorInfo)[0]
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        bad_requests = _unpacked(status, error_details_pb2.BadRequest)
        _require(any(b.field_violations for b in bad_requests), "no BadRequest", _details_of(status), error)
    if code is grpc.StatusCode.NOT_FOUND and info.reason not in PAGE_TOKEN_REASONS:
        resource_infos = _unpacked(status, error_details_pb2.ResourceInfo)
        _require(bool(resource_infos), "no ResourceInfo", _details_of(status), error)
    if parses:
        _require(
            info.reason != "REQUEST_MALFORMED", "REQUEST_MALFORMED for parsing bytes", info.reason, error
        )
    else:
        malformed = (code, info.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_MALFORMED")
        _require(malformed, "malformed request not REQUEST_MALFORMED", info.reason, error)
    _check_trailer_size(error)


def _check_status(error: grpc.aio.AioRpcError, flow_id: str, injected: bool = False) -> None:
    """A google.rpc.Status with the call's code and message, one ErrorInfo (UPPER_SNAKE reason, a domain,
    the flow id) and a RequestInfo with the flow id. An injected fault's ErrorInfo has the rule's reason,
    and the rule may add ErrorInfos and RequestInfos of its own."""
    status = _status(error)
    _require(status is not None, "no rich status", f"no parsable {DETAILS_KEY} trailer", error)
    assert status is not None
    same = (status.code, status.message) == (error.code().value[0], error.details())
    _require(
        same, "status differs", f"trailer has code {status.code}, message {_short(status.message)!r}", error
    )
    infos = _unpacked(status, error_details_pb2.ErrorInfo)
    request_ids = [r.request_id for r in _unpacked(status, error_details_pb2.RequestInfo)]
    if injected:
        _require(flow_id in request_ids, "no RequestInfo with the flow id", request_ids, error)
        _require(
            any(i.metadata.get("flow_id") == flow_id for i in infos),
            "no ErrorInfo with the flow id",
            _details_of(status),
            error,
        )
        return
    _require(len(infos) == 1, "not one ErrorInfo", f"{len(infos)} ErrorInfos", error)
    info = infos[0]
    _require(bool(UPPER_SNAKE.fullmatch(info.reason)), "reason not UPPER_SNAKE", repr(info.reason), error)
    _require(bool(info.domain), "ErrorInfo without domain", _details_of(status), error)
    _require(
        info.metadata.get("flow_id") == flow_id,
        "ErrorInfo without the flow id",
        _short(str(dict(info.metadata))),
        error,
    )
    _require(request_ids == [flow_id], "RequestInfo without the flow id", request_ids, error)


def _injected_codes(fault: admin_pb2.Fault) -> set[grpc.StatusCode]:
    kind = fault.WhichOneof("action")
    numbers = {
        fault.fail.code if kind == "fail" else fault.break_stream.code if kind == "break_stream" else -1
    }
    return {code for code in grpc.StatusCode if code.value[0] in numbers}


def check_probe(fault: admin_pb2.Fault, reply: Reply, tracebacks: Tracebacks) -> None:
    """An API call that a fault rule matches: any code the rule injects, a client deadline when the rule
    delays or stalls, else a proper status that fits the client's limits."""
    error = reply.error
    if error is None:
        return
    _check_transport(error)
    sent_back = reply.headers.get_all(FLOW_ID_HEADER) if reply.headers is not None else []
    _require(len(sent_back) == 1, "x-flow-id header", f"{len(sent_back)} x-flow-id headers", error)
    flow_id = str(sent_back[0])
    code = error.code()
    delaying = fault.WhichOneof("action") in ("latency", "stall_stream", "poor_connection")
    if code is grpc.StatusCode.DEADLINE_EXCEEDED and delaying and _status(error) is None:
        return  # the client's own deadline
    if code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL) and code not in _injected_codes(fault):
        trace = tracebacks(flow_id) or ""
        raise Violation(
            code.name, f"flow id {flow_id}: {_short(error.details())}", code.name, reason_of(error), trace
        )
    _check_status(error, flow_id, injected=True)
    _check_trailer_size(error)


# --- the emulator under test ------------------------------------------------------------------------------


class InProcessTracebacks(logging.Handler):
    """Keeps the logged tracebacks of calls that failed with a bug in this process, by flow id."""

    FLOW_ID = re.compile(r"\(flow id ([^)]*)\)")

    def __init__(self, keep: int = 1000) -> None:
        super().__init__(logging.ERROR)
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        self.found: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.keep = keep

    def emit(self, record: logging.LogRecord) -> None:
        match = self.FLOW_ID.search(record.getMessage())
        if match:
            self.found[match[1]] = self.format(record)
            while len(self.found) > self.keep:
                self.found.popitem(last=False)

    def __call__(self, flow_id: str) -> str | None:
        return self.found.get(flow_id)


LOG_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ", re.MULTILINE)
TRACEBACK_WAIT_S = 5.0


def log_records(text: str) -> list[str]:
    """The records of a ``fleet-emulator serve`` log, each with its traceback lines."""
    starts = [m.start() for m in LOG_RECORD.finditer(text)]
    return [text[a:b].rstrip() for a, b in itertools.pairwise([*starts, len(text)])]


class LogFileTracebacks:
    """Finds the traceback of a flow id in the log file of an emulator process, which logs it before it
    answers; polls briefly since the process writes the file on its own schedule."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def __call__(self, flow_id: str) -> str | None:
        marker = f"(flow id {flow_id})"
        deadline = time.monotonic() + TRACEBACK_WAIT_S
        while True:
            text = self.log.read_text(errors="replace")
            if marker in text:
                return next(r for r in reversed(log_records(text)) if marker in r)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)


def signature(traceback: str) -> str:
    """What identifies a bug in a traceback: the innermost frame and the exception, digits masked."""
    lines = [line.strip() for line in traceback.splitlines() if line.strip()]
    frames = [line for line in lines if line.startswith("File ")]
    last = lines[-1] if lines else ""
    where = ""
    if frames:
        match = re.match(r'File "([^"]*)", line (\d+), in (\S+)', frames[-1])
        where = f"{Path(match[1]).name}:{match[2]} {match[3]}" if match else frames[-1]
    return f"{where} {re.sub(r'[0-9]+', '#', last)}".strip()


def collect(messages: Iterable[Message], found: dict[str, set[str]]) -> None:
    """The identifiers (``id``, ``*_id``, ``etag``) in the messages, nested ones too, by field name."""
    for message in messages:
        for fd, value in message.ListFields():
            values = value if fd.is_repeated else [value]
            identifier = fd.name in ("id", "etag") or fd.name.endswith("_id")
            if fd.type == FieldDescriptor.TYPE_STRING and identifier:
                found[fd.name].update(values)
            elif fd.type == FieldDescriptor.TYPE_MESSAGE:
                collect(values, found)


@dataclass(frozen=True)
class World:
    """What the fuzzer knows of the emulator's scenario: its seeds, and a fleet and an online vehicle."""

    seeds: Seeds
    fleet_id: str
    vehicle_id: str


async def explore_world(channel: grpc.aio.Channel) -> World:
    """The identifiers of every fleet and vehicle of the scenario, a first page token of each List RPC and
    fleet, each fleet's stream position, and the scenario's YAML."""
    stub = pb_grpc.FleetStateServiceStub(channel)
    found: dict[str, set[str]] = collections.defaultdict(set)
    fleets = (await stub.ListFleets(pb.ListFleetsRequest(page_size=1000))).fleets
    collect(fleets, found)
    tokens = [(await stub.ListFleets(pb.ListFleetsRequest(page_size=1))).next_page_token]
    online: list[str] = []
    vehicle_ids: set[str] = set()
    positions: set[str] = set()
    for fleet in fleets:
        page = await stub.ListVehicles(pb.ListVehiclesRequest(fleet_id=fleet.id, page_size=1000))
        collect(page.vehicles, found)
        vehicle_ids.update(v.id for v in page.vehicles)
        online += [v.id for v in page.vehicles if v.connectivity == pb.CONNECTIVITY_STATE_ONLINE]
        first = await stub.ListVehicles(pb.ListVehiclesRequest(fleet_id=fleet.id, page_size=1))
        tokens.append(first.next_page_token)
        positions.add(
            (await stub.PollVehicleEvents(pb.PollRequest(event_id=fleet.vehicle_events_id))).message_id
        )
    assert all(tokens), "the scenario needs two fleets or more, each with two vehicles or more"
    assert online, "the scenario needs an online vehicle"
    found["page_token"] = set(tokens)
    found["last_message_id"] = positions
    named = {
        "fleet_id": {f.id for f in fleets},
        "vehicle_id": vehicle_ids,
        "event_id": found["vehicle_events_id"],
        "page_token": found["page_token"],
        "etag": found["etag"],
        "last_message_id": positions,
    }
    scenario = (importlib.resources.files("fleet_emulator") / "scenarios" / "demo.yaml").read_text()
    seeds = Seeds(
        tuple(tuple(sorted(found[name])) for name in sorted(found)),
        scenario,
        tuple((name, tuple(sorted(values))) for name, values in sorted(named.items())),
    )
    return World(seeds, fleets[0].id, sorted(online)[0])


# --- counting ---------------------------------------------------------------------------------------------

FUZZED, PROBE, HISTORY, HELPER = "fuzzed", "probe", "history", "helper"
CHECKED = (FUZZED, PROBE, HISTORY)
BUG_CODES = ("INTERNAL", "UNKNOWN")


@dataclass
class Tally:
    """Calls per backend, role (fuzzed, probe, helper), status code and ErrorInfo reason."""

    counts: collections.Counter[tuple[str, str, str, str]] = field(default_factory=collections.Counter)
    findings: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: collections.defaultdict(float))

    def add(self, backend: str, role: str, reply: Reply) -> None:
        code = reply.error.code().name if reply.error is not None else "OK"
        self.counts[backend, role, code, reason_of(reply.error)] += 1

    def total(self, roles: tuple[str, ...] = CHECKED) -> int:
        return sum(n for (_, role, _, _), n in self.counts.items() if role in roles)

    def render(self) -> str:
        checked = CHECKED
        backends = sorted({backend for backend, *_ in self.counts})
        helpers = self.total((HELPER,))
        lines = [
            f"fuzz histogram: {self.total()} checked calls (fuzzed, probes, histories), {helpers} helpers"
        ]
        for backend in backends:
            mine = {k: n for k, n in self.counts.items() if k[0] == backend}
            checked_total = sum(n for k, n in mine.items() if k[1] in checked)
            took = f" in {self.seconds[backend]:.0f} s" if backend in self.seconds else ""
            roles = ", ".join(f"{role} {sum(n for k, n in mine.items() if k[1] == role)}" for role in checked)
            lines += ["", f"backend {backend}: {checked_total} checked calls ({roles}){took}"]
            by_code: collections.Counter[str] = collections.Counter()
            by_reason: collections.Counter[tuple[str, str]] = collections.Counter()
            for (_, role, code, reason), n in mine.items():
                if role in checked:
                    by_code[code] += n
                    by_reason[code, reason] += n
            for code, n in sorted(by_code.items(), key=lambda item: -item[1]):
                lines.append(f"  {code:<22} {n:>8}")
                for (c, reason), m in sorted(by_reason.items(), key=lambda item: -item[1]):
                    if c == code:
                        lines.append(f"      {reason:<40} {m:>8}")
            helper_codes = collections.Counter({(k[2], k[3]): n for k, n in mine.items() if k[1] == HELPER})
            if helper_codes:
                shown = ", ".join(
                    f"{code} {reason} {n}" for (code, reason), n in sorted(helper_codes.items())
                )
                lines.append(f"  helper calls (clock set/restore, namespace deletion): {shown}")
        lines += ["", f"total: {self.total()} checked calls"]
        bugs: collections.Counter[str] = collections.Counter()
        for (_, role, code, _), n in self.counts.items():
            if code in BUG_CODES:
                bugs[role] += n
        injected = f" (and {bugs[PROBE]} on probes, which fault rules may inject)" if bugs[PROBE] else ""
        lines.append(f"INTERNAL or UNKNOWN: {bugs[FUZZED] + bugs[HISTORY] + bugs[HELPER]} calls{injected}")
        lines.append(f"findings (contract violations grouped by kind and traceback): {len(self.findings)}")
        for finding in self.findings:
            lines += ["", finding]
        if self.log_errors:
            lines += ["", f"errors logged by the emulator outside the calls above: {len(self.log_errors)}"]
            lines += self.log_errors
        return "\n".join(lines)


# --- running examples -------------------------------------------------------------------------------------


class Fuzzer:
    """Runs examples against one emulator through a channel on an event loop of its own (idle in between).

    Not a dataclass, so that falsifying examples show it in one line.
    """

    def __init__(
        self,
        runner: asyncio.Runner,
        channels: Channels,
        world: World,
        tracebacks: Tracebacks,
        backend: str = "memory",
        tally: Tally | None = None,
    ) -> None:
        self.runner = runner
        self.channels = channels
        self.world = world
        self.seeds = world.seeds
        self.tracebacks = tracebacks
        self.backend = backend
        self.tally = tally
        self.run_id = secrets.token_hex(3)
        self.namespaces = itertools.count()
        self.helper_violations: list[tuple[str, Violation]] = []
        self.counting = True

    def fresh_namespace(self) -> str:
        return f"fuzz-{self.run_id}-{next(self.namespaces)}"

    def run(self, example: Example) -> None:
        """Send the example and check every reply; raises a ``Violation``."""
        self.runner.run(self._run(example))

    def _count(self, role: str, reply: Reply) -> None:
        if self.tally is not None and self.counting:
            self.tally.add(self.backend, role, reply)

    async def _helper(self, name: str, **fields: Any) -> None:
        """An admin call in the default namespace that sets the scene or cleans up, when the admin service
        has it (the request is built from its descriptor); checked, but its violations are kept aside
        (``helper_violations``) rather than failing the example."""
        rpc = admin_rpc(name)
        if rpc is None:
            return
        request = rpc.request_class()(**fields)
        body = request.SerializeToString()
        reply = await call(self.channels, rpc, body, None)
        self._count(HELPER, reply)
        try:
            check_contract(rpc, body, None, reply, self.tracebacks)
        except Violation as violation:
            self.helper_violations.append((f"{rpc} {{{render_request(request)}}} (helper)", violation))

    async def _run(self, example: Example) -> None:
        rpc = example.rpc
        namespace = None
        if rpc.admin:
            namespace = example.bad_namespace or self.fresh_namespace()
        moved = example.clock is not None
        try:
            if example.clock is not None:
                await self._helper("SetClock", time=example.clock)
            for earlier, request in example.history:
                await self._history(earlier, request, namespace)
            reply = await call(self.channels, rpc, example.body, example.flow_id, namespace)
            self._count(FUZZED, reply)
            moved = moved or moves_clock(rpc)
            check_contract(rpc, example.body, example.flow_id, reply, self.tracebacks)
            if rpc.method.name == "CreateFault" and reply.error is None and example.bad_namespace is None:
                assert namespace is not None and reply.response is not None
                await self._probe(namespace, admin_pb2.CreateFaultResponse.FromString(reply.response).fault)
        finally:
            if moved:
                await self._helper("UseRealClock")
            if namespace is not None and example.bad_namespace is None:
                await self._helper("DeleteNamespace", namespace=namespace)

    async def _history(self, rpc: Rpc, request: Message, namespace: str | None) -> None:
        body = request.SerializeToString()
        reply = await call(self.channels, rpc, body, None, namespace)
        self._count(HISTORY, reply)
        try:
            check_contract(rpc, body, None, reply, self.tracebacks)
        except Violation as violation:
            violation.kind = f"history call: {violation.kind}"
            violation.detail += f"; history call {rpc.path} {{{render_request(request)}}}"
            raise

    def probe_for(self, fault: admin_pb2.Fault) -> tuple[Rpc, Message]:
        """An API call that the rule matches: its RPC (v2's, or the named version's), else v2 GetFleet; with
        the rule's fleet or vehicle, else the scenario's."""
        name = fault.method.strip("/")
        service, _, method = name.rpartition("/")
        candidates = [
            r
            for r in API_RPCS
            if r.method.name == method and service in ("", r.method.containing_service.full_name)
        ]
        latest = [r for r in candidates if r.version == LATEST]
        fallback = [r for r in API_RPCS if r.version == LATEST and r.method.name == "GetFleet"]
        rpc = (latest or candidates or fallback)[0]
        fleet_id = fault.fleet_id or self.world.fleet_id
        values = {
            "fleet_id": fleet_id,
            "vehicle_id": fault.vehicle_id or self.world.vehicle_id,
            "event_id": f"fleets/{fleet_id}/vehicle-events",
        }
        fields = rpc.method.input_type.fields_by_name
        request = rpc.request_class()(**{k: v for k, v in values.items() if k in fields})
        return rpc, request

    async def _probe(self, namespace: str, fault: admin_pb2.Fault) -> None:
        rpc, request = self.probe_for(fault)
        reply = await call(self.channels, rpc, request.SerializeToString(), None, namespace, PROBE_TIMEOUT)
        self._count(PROBE, reply)
        try:
            check_probe(fault, reply, self.tracebacks)
        except Violation as violation:
            violation.kind = f"probe after CreateFault: {violation.kind}"
            violation.detail += f"; probe {rpc.path} {{{render_request(request)}}}"
            raise


# --- findings of the long profile -------------------------------------------------------------------------

SHRINK_BUDGET = 120  # re-runs per finding


def finding_key(violation: Violation) -> tuple[str, str]:
    if violation.traceback:
        return violation.kind, signature(violation.traceback)
    return violation.kind, violation.reason


@dataclass
class Findings:
    """Violations of one test of the long profile, grouped by kind and traceback, smallest example first."""

    groups: dict[tuple[str, str], list[tuple[Example, Violation]]] = field(default_factory=dict)
    helpers: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    helper_violations: dict[tuple[str, str], Violation] = field(default_factory=dict)

    def add(self, example: Example, violation: Violation) -> None:
        self.groups.setdefault(finding_key(violation), []).append((example, violation))

    def add_helper(self, what: str, violation: Violation) -> None:
        """A violation of a call that set the scene or cleaned up (``Fuzzer.helper_violations``)."""
        key = finding_key(violation)
        self.helpers.setdefault(key, []).append(what)
        self.helper_violations.setdefault(key, violation)

    def __bool__(self) -> bool:
        return bool(self.groups or self.helpers)

    def report(self, fuzzer: Fuzzer, label: str) -> list[str]:
        """One text per group: how often, the shrunk example, the status and the server's traceback."""
        texts = []
        fuzzer.counting = False  # re-runs are not counted
        try:
            for key, items in self.groups.items():
                example, violation = min(items, key=lambda item: len(item[0].body))
                shrunk, violation = shrink(fuzzer, example, violation, key)
                lines = [
                    f"[{label}] {key[0]} x{len(items)}: {shrunk.rpc}",
                    f"  request: {shrunk.describe()}",
                    f"  status: {violation.detail}",
                ]
                texts.append("\n".join(lines + _traceback_lines(violation)))
        finally:
            fuzzer.counting = True
        for key, whats in self.helpers.items():
            violation = self.helper_violations[key]
            lines = [
                f"[{label}] {key[0]} x{len(whats)}: a helper call",
                f"  request: {whats[0]}",
                f"  status: {violation.detail}",
            ]
            texts.append("\n".join(lines + _traceback_lines(violation)))
        return texts


def _traceback_lines(violation: Violation) -> list[str]:
    """The traceback without the lines that only underline code (``^^^^``)."""
    lines = [line for line in violation.traceback.splitlines() if line.strip(" ^~")]
    return ["  server traceback:", *(f"    {line}" for line in lines)] if lines else []


def _reproduces(fuzzer: Fuzzer, example: Example, key: tuple[str, str]) -> Violation | None:
    try:
        fuzzer.run(example)
    except Violation as violation:
        return violation if finding_key(violation) == key else None
    return None


def shrink(
    fuzzer: Fuzzer, example: Example, violation: Violation, key: tuple[str, str]
) -> tuple[Example, Violation]:
    """A smaller example with the same finding: greedily without the clock, the flow id, fields, list
    items, long strings' tails, or (raw bodies) chunks of bytes, as long as it still reproduces."""
    budget = [SHRINK_BUDGET]
    last: list[Violation | None] = [None]

    def still(candidate: Example) -> bool:
        if budget[0] <= 0:
            return False
        budget[0] -= 1
        found = _reproduces(fuzzer, candidate, key)
        if found is not None:
            last[0] = found
        return found is not None

    for change in ({"clock": None}, {"flow_id": None}, {"bad_namespace": None}, {"history": ()}):
        candidate = example.replace(**change)
        if candidate.describe() != example.describe() and still(candidate):
            example = candidate
    index = 0
    while index < len(example.history):
        candidate = example.replace(history=example.history[:index] + example.history[index + 1 :])
        if still(candidate):
            example = candidate
        else:
            index += 1
    if example.request is None and example.rpc.parses(example.body):
        parsed = example.replace(request=example.rpc.request_class().FromString(example.body))
        if still(parsed):
            example = parsed
    if example.request is not None:
        request = _shrink_message(example.request, lambda m: still(example.replace(request=m)))
        example = example.replace(request=request)
    else:
        example = example.replace(body=_shrink_bytes(example.body, lambda b: still(example.replace(body=b))))
    if last[0] is None:
        last[0] = _reproduces(fuzzer, example, key)
    if last[0] is None:
        violation.detail += " (not reproduced when run again alone)"
        return example, violation
    return example, last[0]


def _shrink_message(message: Message, still: Callable[[Message], bool]) -> Message:
    for fd, _ in list(message.ListFields()):
        candidate = copy.deepcopy(message)
        candidate.ClearField(fd.name)
        if still(candidate):
            message = candidate
    for fd, value in list(message.ListFields()):
        message_type = fd.message_type
        if message_type is not None and message_type.GetOptions().map_entry:
            continue
        if fd.is_repeated:
            index = 0
            while index < len(getattr(message, fd.name)):
                candidate = copy.deepcopy(message)
                del getattr(candidate, fd.name)[index]
                if still(candidate):
                    message = candidate
                else:
                    index += 1
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:

            def inner_still(inner: Message, name: str = fd.name, outer: Message = message) -> bool:
                candidate = copy.deepcopy(outer)
                getattr(candidate, name).CopyFrom(inner)
                return still(candidate)

            shrunk = _shrink_message(getattr(message, fd.name), inner_still)
            message = copy.deepcopy(message)
            getattr(message, fd.name).CopyFrom(shrunk)
        elif fd.type == FieldDescriptor.TYPE_STRING and len(value) > 8:
            while len(value) > 8:
                candidate = copy.deepcopy(message)
                setattr(candidate, fd.name, value[: len(value) // 2])
                if not still(candidate):
                    break
                message, value = candidate, value[: len(value) // 2]
    return message


def _shrink_bytes(body: bytes, still: Callable[[bytes], bool]) -> bytes:
    size = max(len(body) // 2, 1)
    while size >= 1 and body:
        start = 0
        while start < len(body):
            candidate = body[:start] + body[start + size :]
            if still(candidate):
                body = candidate
            else:
                start += size
        size //= 2
    return body
