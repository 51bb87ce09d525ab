"""A server interceptor that gives every call of the emulator's own services the same frame.

For each call it picks the flow id (the client's ``x-flow-id`` or a new one) and sends it as a response
header, settles the namespace (``x-emulator-namespace``), turns request bytes that do not parse or are too
large into ``INVALID_ARGUMENT`` instead of gRPC's own error, journals calls of the emulated API, admits them
(bearer auth and rate limits, ``admission.py``) and applies fault rules to them (``steering.py``), and maps
every ``EmulatorError`` to its rich status in one place (``api/errors.py``). An exception that is not an
``EmulatorError`` is a bug: it is logged and sent as ``INTERNAL`` with the flow id. It also measures each
call (``telemetry/metrics.py``: its code, a unary call's time, the open streams and the events they
deliver), sets the method for the logs beside the flow id and namespace, and logs the call's end at DEBUG.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from fleet_emulator.api.admission import admit, admit_admin
from fleet_emulator.api.errors import contract_error, to_status
from fleet_emulator.api.steering import (
    UNWATCHED,
    CallWatch,
    InjectedFault,
    Metadata,
    Unwatched,
    code_of,
    watch,
)
from fleet_emulator.api.wellformed import violations_of
from fleet_emulator.domain import reasons
from fleet_emulator.domain.errors import EmulatorError, FieldViolation, InvalidArgument
from fleet_emulator.domain.flow import FLOW_ID_HEADER, choose_flow_id, current_flow_id
from fleet_emulator.domain.journal import Kept
from fleet_emulator.domain.namespaces import DEFAULT, NAMESPACE_HEADER, Namespaces, current_namespace
from fleet_emulator.domain.reasons import Reason
from fleet_emulator.telemetry.logs import current_method
from fleet_emulator.telemetry.metrics import CallMetrics, stream_metrics, unary_metrics

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
CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


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


def _as_is(serialize: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """``serialize``, but a response already serialized (a ``Kept``) goes out as its bytes."""
    if serialize is None:
        return None

    def write(message: Any) -> bytes:
        return message.data if message.__class__ is Kept else serialize(message)

    return write


async def _send_headers(context: Context, headers: tuple[tuple[str, str], ...]) -> None:
    """Send the response headers, unless the call ended meanwhile (the client went away, its deadline
    passed): then there is no one to send them to, and no error to report."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        return
    try:
        await context.send_initial_metadata(headers)
    except Exception:
        if not (context.cancelled() or context.done()):
            raise
        log.debug("call ended before its headers were sent (flow id %s)", current_flow_id.get())


def _refuse_bad_values(request: Any) -> None:
    """INVALID_ARGUMENT for a request holding values no field may hold (``wellformed.py``)."""
    if problems := violations_of(request):
        raise InvalidArgument(reasons.FIELD_INVALID, problems)


def _begin(method: str, metadata: Metadata) -> str:
    """Settle the call's flow id and namespace, both from its headers, and its method for the logs."""
    current_method.set(method)
    headers = dict(metadata)
    sent = headers.get(FLOW_ID_HEADER)
    flow_id = choose_flow_id(sent if isinstance(sent, str) else None)
    current_flow_id.set(flow_id)
    namespace = headers.get(NAMESPACE_HEADER, DEFAULT)
    current_namespace.set(namespace if isinstance(namespace, str) else "\x00")
    return flow_id


async def _fail(error: Exception, context: Context) -> None:
    if isinstance(error, grpc.aio.AbortError):
        raise error
    if isinstance(error, InjectedFault):
        await context.abort_with_status(error.status)
    await context.abort_with_status(to_status(contract_error(error), current_flow_id.get()))


def _code_of(error: BaseException, context: Context) -> str:
    """The name of the code a call that ended with ``error`` gets (the one ``_fail`` sends)."""
    if isinstance(error, grpc.aio.AbortError):
        aborted: grpc.StatusCode | None = context.code()
        return aborted.name if aborted is not None else "UNKNOWN"
    return CODE_NAMES.get(code_of(error), "UNKNOWN")


def _finished(measured: CallMetrics, code: str) -> None:
    measured.count(code)
    if log.isEnabledFor(logging.DEBUG):
        flow_id = current_flow_id.get()
        log.debug("%s finished: %s (flow id %s)", measured.method, code, flow_id, extra={"code": code})


async def _end(
    watching: CallWatch | Unwatched, error: BaseException, context: Context, measured: CallMetrics
) -> None:
    """Journal and count how the call ended, then send the error's status. Cancellations propagate, but
    for a call the emulator cut off (its namespace deleted, the emulator stopping), which ends with that
    error."""
    task = asyncio.current_task()
    if isinstance(error, asyncio.CancelledError) and watching.cut_off is not None and task is not None:
        task.uncancel()
        error = watching.cut_off
    await watching.finish(error)
    _finished(measured, _code_of(error, context))
    if isinstance(error, asyncio.CancelledError):
        log.debug("call cancelled (flow id %s)", current_flow_id.get())
    if isinstance(error, Exception):
        await _fail(error, context)


class CallScopeInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Applies the call frame to services whose full name starts with one of ``prefixes``; the calls of
    services under ``observed`` (the emulated API) are also journaled and subject to fault rules, the
    others (the admin service) need ``admin_token`` when it is set. ``headers`` adds response headers per
    service (a deprecated version's)."""

    def __init__(
        self,
        prefixes: tuple[str, ...],
        observed: str,
        namespaces: Namespaces,
        headers: dict[str, tuple[tuple[str, str], ...]] | None = None,
        admin_token: str = "",
    ) -> None:
        self.admin_token = admin_token
        self.prefixes = tuple(f"/{p}" for p in prefixes)
        self.headers = {f"/{service}/": extra for service, extra in (headers or {}).items()}
        self.observed = f"/{observed}"
        self.namespaces = namespaces
        self._framed: dict[str, Any] = {}  # method -> its handler in the frame

    async def _open(
        self, method: str, request: Any, context: Context, streaming: bool
    ) -> CallWatch | Unwatched:
        metadata: Metadata = context.invocation_metadata() or ()  # read once: gRPC converts it per read
        flow_id = _begin(method, metadata)
        service = method[: method.rindex("/") + 1]
        headers = ((FLOW_ID_HEADER, flow_id), *self.headers.get(service, ()))
        try:  # the headers go out also when the call is refused here
            if isinstance(request, RejectedRequest):
                raise InvalidArgument(request.reason, [FieldViolation("request", request.problem)])
            if not method.startswith(self.observed):
                admit_admin(metadata, self.admin_token)
                _refuse_bad_values(request)
                return UNWATCHED
            namespace = await self.namespaces.for_call()
            watching = watch(namespace, method, request, context, metadata, flow_id, streaming)
            if streaming:
                await namespace.journal.numbered(watching.entry)
            headers += await admit(namespace, watching, metadata, self.namespaces.jwt_secret)
            try:
                _refuse_bad_values(request)
            except EmulatorError as error:
                await watching.finish(error)
                raise
            await watching.arm(namespace.faults, request, streaming)
            return watching
        finally:
            await _send_headers(context, headers)

    def _unary(self, method: str, behaviour: Unary) -> Unary:
        measured = unary_metrics(method, method.startswith(self.observed))

        async def serve(request: Any, context: Context) -> Any:
            watching: CallWatch | Unwatched = UNWATCHED
            started = time.perf_counter()
            try:
                watching = await self._open(method, request, context, streaming=False)
                await watching.before()
                response = await behaviour(request, context)
                await watching.after()
            except BaseException as error:
                await _end(watching, error, context, measured)
                raise
            finally:
                measured.duration.observe(time.perf_counter() - started)
            await watching.finish(None)
            _finished(measured, "OK")
            return response

        return serve

    def _streaming(self, method: str, behaviour: Streaming) -> Streaming:
        measured = stream_metrics(method, method.startswith(self.observed))

        async def serve(request: Any, context: Context) -> AsyncIterator[Any]:
            watching: CallWatch | Unwatched = UNWATCHED
            measured.open.inc()
            try:
                watching = await self._open(method, request, context, streaming=True)
                await watching.before()
                async for message in behaviour(request, context):
                    yield message
                    await watching.sent(message)
            except BaseException as error:
                await _end(watching, error, context, measured)
                raise
            finally:
                measured.open.dec()
            await watching.finish(None)
            _finished(measured, "OK")

        return serve

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Any]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        method: str = handler_call_details.method
        framed = self._framed.get(method)
        if framed is not None:
            return framed
        handler = await continuation(handler_call_details)
        if handler is None or not method.startswith(self.prefixes):
            return handler
        framed = self._framed[method] = self._frame(method, handler)
        return framed

    def _frame(self, method: str, handler: Any) -> Any:
        """The method's handler in the call frame, made once per method: its requests parsed tolerantly,
        its responses sent as they are when already serialized (``wire.py``)."""
        parse, write = _tolerant(handler.request_deserializer), _as_is(handler.response_serializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),
                request_deserializer=parse,
                response_serializer=write,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(method, handler.unary_stream),
                request_deserializer=parse,
                response_serializer=write,
            )
        return handler
