"""A server interceptor that gives every call of the emulator's own services the same frame.

For each call it picks the flow id (the client's ``x-flow-id`` or a new one) and sends it as a response
header, turns request bytes that do not parse or are too large into ``INVALID_ARGUMENT`` instead of gRPC's
own error, and
maps every ``EmulatorError`` to its rich status in one place (``api/errors.py``). An exception that is not
an ``EmulatorError`` is a bug: it is logged and sent as ``INTERNAL`` with the flow id.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from fleet_emulator.api.errors import to_status
from fleet_emulator.domain import reasons
from fleet_emulator.domain.errors import EmulatorError, FieldViolation, Internal, InvalidArgument
from fleet_emulator.domain.flow import FLOW_ID_HEADER, choose_flow_id, current_flow_id
from fleet_emulator.domain.reasons import Reason

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 4 * 1024 * 1024
# gRPC itself refuses larger messages, before any handler runs and without details: it is set well above
# MAX_REQUEST_BYTES so that requests between the two get INVALID_ARGUMENT with a BadRequest instead.
TRANSPORT_MAX_BYTES = 64 * 1024 * 1024

# grpc's type stubs lag behind grpc.aio (no abort_with_status, sync-only handler types): contexts and
# handlers are typed loosely here, at the one place that touches them generically.
Context = Any
Unary = Callable[[Any, Context], Awaitable[Any]]
Streaming = Callable[[Any, Context], AsyncIterator[Any]]


class RejectedRequest:
    """Stands in for request bytes that cannot be served, so that the handler can answer properly."""

    def __init__(self, reason: Reason, problem: str) -> None:
        self.reason = reason
        self.problem = problem


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        if len(data) > MAX_REQUEST_BYTES:
            problem = f"is {len(data)} bytes, more than the {MAX_REQUEST_BYTES} a request may have"
            return RejectedRequest(reasons.REQUEST_TOO_LARGE, problem)
        try:
            return deserialize(data)
        except DecodeError as exc:
            return RejectedRequest(reasons.REQUEST_MALFORMED, f"cannot be parsed: {exc}")

    return parse


async def _begin(request: Any, context: Context) -> str:
    sent = dict(context.invocation_metadata() or ()).get(FLOW_ID_HEADER)
    flow_id = choose_flow_id(sent if isinstance(sent, str) else None)
    current_flow_id.set(flow_id)
    await context.send_initial_metadata(((FLOW_ID_HEADER, flow_id),))
    if isinstance(request, RejectedRequest):
        raise InvalidArgument(request.reason, [FieldViolation("request", request.problem)])
    return flow_id


async def _fail(error: Exception, context: Context) -> None:
    if isinstance(error, grpc.aio.AbortError):
        raise error
    if not isinstance(error, EmulatorError):
        log.exception("bug while serving a call (flow id %s)", current_flow_id.get())
        error = Internal(reasons.INTERNAL_ERROR, "internal error in the emulator; report the flow id")
    await context.abort_with_status(to_status(error, current_flow_id.get()))


def _unary(behaviour: Unary) -> Unary:
    async def serve(request: Any, context: Context) -> Any:
        try:
            await _begin(request, context)
            return await behaviour(request, context)
        except Exception as error:
            await _fail(error, context)

    return serve


def _streaming(behaviour: Streaming) -> Streaming:
    async def serve(request: Any, context: Context) -> AsyncIterator[Any]:
        try:
            await _begin(request, context)
            async for message in behaviour(request, context):
                yield message
        except Exception as error:
            await _fail(error, context)

    return serve


class CallScopeInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Applies the call frame to services whose full name starts with one of ``prefixes``."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        self.prefixes = tuple(f"/{p}" for p in prefixes)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or not method.startswith(self.prefixes):
            return handler
        parse, write = _tolerant(handler.request_deserializer), handler.response_serializer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary), request_deserializer=parse, response_serializer=write
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _streaming(handler.unary_stream), request_deserializer=parse, response_serializer=write
            )
        return handler
