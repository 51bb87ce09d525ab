"""What the control plane does to each call of the emulated API: journal it and apply fault rules.

``watch`` opens a journal entry for the call in its namespace (request, redacted headers, flow id, later
the status, duration and, for streams, the messages sent); once the call is admitted, ``CallWatch.arm``
takes the action of the first fault rule that fires for it. The call-scope interceptor runs the action:
latency and failures before the handler, broken and stalled streams between messages, and a poor
connection before a command (not executed) or after it (executed: the response is lost).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2

from fleet_emulator.api.convert import timedelta_of
from fleet_emulator.api.errors import STATUS_DETAILS, fault_status, to_status
from fleet_emulator.api.shrink import journaled, kept
from fleet_emulator.domain import faults
from fleet_emulator.domain.errors import EmulatorError, Unavailable, shown
from fleet_emulator.domain.fault_book import FaultBook
from fleet_emulator.domain.journal import JournalEntry, Kept, redact
from fleet_emulator.domain.namespaces import Namespace

CANCELLED = 1
INTERNAL = 13


class InjectedFault(Exception):
    """A fault rule failed the call or broke its stream; ``status`` is what the client gets."""

    def __init__(
        self, status: grpc.Status, code: int, message: str, reason: str, details: tuple[Any, ...] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason
        self.retry_delay = _retry_delay(details)


def _retry_delay(details: tuple[Any, ...]) -> timedelta | None:
    """The delay of a RetryInfo among a fault's packed details, if there is one."""
    for packed in details:
        if packed.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            packed.Unpack(info)
            return timedelta_of(info.retry_delay)
    return None


def _about(request: Any) -> tuple[str, str]:
    """The fleet and vehicle a request is about, for fault rules that name them."""
    fields = {f.name for f in request.DESCRIPTOR.fields} if isinstance(request, Message) else set()
    fleet_id = request.fleet_id if "fleet_id" in fields else ""
    if not fleet_id and "event_id" in fields and request.event_id.startswith("fleets/"):
        fleet_id = request.event_id.split("/")[1]
    vehicle_id = request.vehicle_id if "vehicle_id" in fields else ""
    return fleet_id, vehicle_id


Metadata = tuple[tuple[str, str | bytes], ...]  # a call's request headers
MAX_HEADER_TEXT = 1024  # characters of a header value or resume point the journal keeps


def request_headers(metadata: Metadata) -> dict[str, str]:
    """The call's request headers for the journal: credentials redacted, binary values by their size, long
    values cut."""
    return redact(
        {k: shown(v, MAX_HEADER_TEXT) if isinstance(v, str) else f"<{len(v)} bytes>" for k, v in metadata}
    )


@dataclass
class CallWatch:
    """A call of the emulated API while it runs: its journal entry, fault action and namespace (which
    counts it among its running calls until it finishes)."""

    entry: JournalEntry
    flow_id: str
    started: float
    namespace: Namespace
    call: asyncio.Task[Any] | None
    action: faults.Action | None = None

    @property
    def cut_off(self) -> EmulatorError | None:
        """What the call ends with when the emulator cancelled it (its namespace deleted, the emulator
        stopping), else None."""
        return self.namespace.cut_off

    async def arm(self, book: FaultBook, request: Any, streaming: bool) -> None:
        """Take the action of the first fault rule that fires for the call (once the call is admitted, so
        that refused calls use up no rule)."""
        if book.rules and isinstance(request, Message):
            self.action = await book.take(self.entry.method, streaming, *_about(request))

    async def before(self) -> None:
        """Latency, a failure, or a stream broken before its first message."""
        action = self.action
        if isinstance(action, faults.AddLatency):
            await asyncio.sleep(action.delay.total_seconds())
        elif isinstance(action, faults.FailCall):
            details = tuple(any_pb2.Any.FromString(d) for d in action.details)
            status = fault_status(action.code, action.message, action.reason, details, self.flow_id)
            raise InjectedFault(status, action.code, action.message, action.reason, details)
        elif isinstance(action, faults.PoorConnection) and not action.executed:
            raise faults.poor_connection_error(action)
        await self._between_messages()

    async def after(self) -> None:
        """A poor connection that loses the answer of a unary call that ran."""
        action = self.action
        if isinstance(action, faults.PoorConnection) and action.executed:
            raise faults.poor_connection_error(action)

    async def sent(self, message: Message | Kept) -> None:
        """Journal a message of a stream, then break or stall the stream if its rule says so now."""
        entry = self.entry
        if entry.keeps_messages:
            entry.sent(message if isinstance(message, Kept) else kept(message))
        else:
            entry.sent(None)
        await self._between_messages()

    async def _between_messages(self) -> None:
        action, count = self.action, self.entry.message_count
        if isinstance(action, faults.BreakStream) and count >= action.after_messages:
            reason = faults.DEFAULT_FAULT_REASON
            status = fault_status(action.code, action.message, reason, (), self.flow_id)
            raise InjectedFault(status, action.code, action.message, reason)
        if isinstance(action, faults.StallStream) and count >= action.after_messages:
            await asyncio.Event().wait()  # until the client goes away or the server stops

    def _keep_details(self, status: grpc.Status) -> None:
        """Keep the rich status the client gets (bounded by ``api/errors.py``), for the journal's readers."""
        details = dict(status.trailing_metadata).get(STATUS_DETAILS, b"")
        assert isinstance(details, bytes)
        self.entry.status_details = details
        if self.entry.journal is not None:
            self.entry.journal.grew(self.entry, len(details))

    async def finish(self, error: BaseException | None) -> None:
        """Record how the call ended, and keep its entry where every replica reads it (``Journal``); not
        that of a call the emulator cut off (stopping, or its namespace deleted): thousands of streams may
        end at once then, and the emulator would not stop in time."""
        if self.call is not None:
            self.namespace.leave(self.call)
        entry = self.entry
        entry.duration = timedelta(seconds=time.monotonic() - self.started)
        entry.finished = True
        if error is not None:
            self._failed(error)
        if self.cut_off is None:
            await self.namespace.journal.finished(entry)

    def _failed(self, error: BaseException) -> None:
        entry = self.entry
        entry.code = code_of(error)
        if isinstance(error, InjectedFault):
            entry.status_message, entry.reason = error.message, error.reason
            entry.retry_delay = error.retry_delay
            self._keep_details(error.status)
        elif isinstance(error, EmulatorError):
            entry.status_message, entry.reason = error.message, error.reason.name
            entry.retry_delay = error.retry_after if isinstance(error, Unavailable) else None
            self._keep_details(to_status(error, self.flow_id))
        elif entry.code == CANCELLED:
            entry.status_message = "cancelled by the client"
        else:
            entry.status_message = "internal error"


def code_of(error: BaseException) -> int:
    """The gRPC code of a call that ended with ``error``: the fault's or the emulator error's, CANCELLED
    when the client went away (a stream cancelled mid-send ends with ``GeneratorExit``), else INTERNAL."""
    if isinstance(error, InjectedFault):
        return error.code
    if isinstance(error, EmulatorError):
        return error.code.value
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return CANCELLED
    return INTERNAL


class Unwatched:
    """The watch of a call that is neither journaled nor subject to faults (the admin service's)."""

    cut_off: EmulatorError | None = None

    async def before(self) -> None:
        return None

    async def after(self) -> None:
        return None

    async def sent(self, message: Message | Kept) -> None:
        return None

    async def finish(self, error: BaseException | None) -> None:
        return None


UNWATCHED = Unwatched()


def watch(
    namespace: Namespace,
    method: str,
    request: Any,
    context: Any,
    metadata: Metadata,
    flow_id: str,
    streaming: bool,
) -> CallWatch:
    """Open the call's journal entry; ``CallWatch.arm`` takes its fault action later."""
    is_message = isinstance(request, Message)
    resumed = getattr(request, "last_message_id", "") if is_message else ""
    cut, size, truncated = journaled(request) if is_message else (None, 0, False)
    entry = JournalEntry(
        start_time=namespace.emulation.fleets.clock.now(),
        method=method,
        version=method.split("/")[1].rsplit(".", 2)[-2],
        metadata=request_headers(metadata),
        request=kept(cut) if cut is not None else None,
        flow_id=flow_id,
        peer=context.peer() or "",
        resumed_from=shown(resumed, MAX_HEADER_TEXT),
        request_size=size,
        request_truncated=truncated,
    )
    namespace.journal.add(entry)
    call = asyncio.current_task()
    if call is not None:
        namespace.enter(call, streaming)
    return CallWatch(entry, flow_id, time.monotonic(), namespace, call)
