"""The one place where domain errors become gRPC statuses with rich details (API.md section 3, AIP-193).

Every status carries a ``google.rpc.Status`` in the ``grpc-status-details-bin`` trailer with the same code
and message, exactly one ``ErrorInfo`` (reason, domain, metadata with the flow id) and a ``RequestInfo``
whose ``request_id`` is the flow id, plus the details of its code (see ``domain/errors.py``).

Errors may echo what a client sent, and trailers have a size limit (8 KiB by default in gRPC), past which
the client gets a bare RESOURCE_EXHAUSTED instead. So every status is bounded here, whatever made it: the
message to ``MAX_MESSAGE_BYTES`` once percent-encoded as ``grpc-message`` carries it, each text in the
details to ``MAX_TEXT`` characters, at most ``MAX_VIOLATIONS`` violations, and the serialized status to
``MAX_STATUS_BYTES`` (violations but the first, then metadata but the flow id, then message text are
dropped until it fits); cut text ends in "…".
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from fleet_emulator.api.convert import duration
from fleet_emulator.domain import errors as domain
from fleet_emulator.domain import reasons
from fleet_emulator.domain.flow import current_flow_id
from fleet_emulator.domain.reasons import DOMAIN

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 1536  # as sent in grpc-message, where a byte outside printable ASCII takes three
MAX_TEXT = 256  # characters of each metadata value, field, description or subject in the details
MAX_VIOLATIONS = 20
STATUS_DETAILS = "grpc-status-details-bin"  # the trailer that carries the google.rpc.Status
_made: weakref.WeakKeyDictionary[domain.EmulatorError, tuple[str, grpc.Status]] = weakref.WeakKeyDictionary()
MAX_STATUS_BYTES = 3072  # serialized google.rpc.Status; its base64 in grpc-status-details-bin is 4 KiB


def bounded_message(text: str) -> str:
    """``text`` cut so that it stays within ``MAX_MESSAGE_BYTES`` once percent-encoded."""
    size = 0
    for index, char in enumerate(text):
        size += 1 if " " <= char <= "~" and char != "%" else 3 * len(char.encode())
        if size > MAX_MESSAGE_BYTES - 9:  # room for the encoded ellipsis
            return text[:index] + domain.ELLIPSIS
    return text


def _cut(text: str) -> str:
    return domain.shown(text, MAX_TEXT)


def _details(error: domain.EmulatorError) -> list[Message]:
    """The code-specific detail messages of an error (after ErrorInfo and RequestInfo)."""
    if isinstance(error, domain.InvalidArgument):
        fields = [
            error_details_pb2.BadRequest.FieldViolation(field=_cut(v.field), description=_cut(v.description))
            for v in error.violations[:MAX_VIOLATIONS]
        ]
        return [error_details_pb2.BadRequest(field_violations=fields)]
    if isinstance(error, domain.NotFound) and error.reason.resource_info:
        return [
            error_details_pb2.ResourceInfo(
                resource_type=error.resource_type,
                resource_name=_cut(error.resource_name),
                description=_cut(error.message),
            )
        ]
    if isinstance(error, domain.FailedPrecondition):
        preconditions = [
            error_details_pb2.PreconditionFailure.Violation(
                type=v.type, subject=_cut(v.subject), description=_cut(v.description)
            )
            for v in error.violations[:MAX_VIOLATIONS]
        ]
        return [error_details_pb2.PreconditionFailure(violations=preconditions)]
    if isinstance(error, domain.Unavailable):
        retry: list[Message] = [error_details_pb2.RetryInfo(retry_delay=duration(error.retry_after))]
        if isinstance(error, domain.ResourceExhausted):
            quotas = [
                error_details_pb2.QuotaFailure.Violation(
                    subject=_cut(v.subject), description=_cut(v.description)
                )
                for v in error.violations[:MAX_VIOLATIONS]
            ]
            retry.append(error_details_pb2.QuotaFailure(violations=quotas))
        return retry
    return []


def to_status(error: domain.EmulatorError, flow_id: str) -> grpc.Status:
    """The gRPC status (code, message and details trailer) for a domain error, made once per error and
    flow id: the journal keeps it and the call sends it."""
    made = _made.get(error)
    if made is not None and made[0] == flow_id:
        return made[1]
    extra = [_packed(m) for m in _details(error)]
    status = _status(error.code.value, error.message, error.reason.name, error.metadata, extra, flow_id)
    _made[error] = (flow_id, status)
    return status


def contract_error(error: Exception) -> domain.EmulatorError:
    """``error`` when it is one the contract names; any other exception is a bug, logged with its
    traceback and the flow id, and answered as ``INTERNAL``."""
    if isinstance(error, domain.EmulatorError):
        return error
    log.exception("bug while serving a call (flow id %s)", current_flow_id.get())
    return domain.Internal(reasons.INTERNAL_ERROR, "internal error in the emulator; report the flow id")


def fault_status(
    code: int, message: str, reason: str, details: Sequence[any_pb2.Any], flow_id: str
) -> grpc.Status:
    """The status an injected fault sends: the rule's code, message, reason and extra details."""
    return _status(code, message, reason, {}, details, flow_id)


def _status(
    code: int,
    message: str,
    reason: str,
    metadata: dict[str, str],
    extra: Sequence[any_pb2.Any],
    flow_id: str,
) -> grpc.Status:
    message = bounded_message(message)
    info = error_details_pb2.ErrorInfo(
        reason=_cut(reason),
        domain=DOMAIN,
        metadata={"flow_id": flow_id, **{_cut(k): _cut(v) for k, v in metadata.items()}},
    )
    request = error_details_pb2.RequestInfo(request_id=flow_id)
    status = status_pb2.Status(code=code, message=message, details=[_packed(info), _packed(request), *extra])
    _fit(status, flow_id)
    result: grpc.Status = rpc_status.to_status(status)
    return result


VIOLATION_LISTS: tuple[tuple[Any, str], ...] = (
    (error_details_pb2.BadRequest, "field_violations"),
    (error_details_pb2.PreconditionFailure, "violations"),
    (error_details_pb2.QuotaFailure, "violations"),
)


def _fit(status: status_pb2.Status, flow_id: str) -> None:
    """Shrink the status until it fits ``MAX_STATUS_BYTES``, keeping every kind of detail it has: the
    violations but the first, then the ErrorInfo metadata but the flow id, then the message (down to
    ``MAX_TEXT``; the status sent carries the same), and only then the details of its code."""
    while status.ByteSize() > MAX_STATUS_BYTES:
        if any(_drop_last_violation(detail) for detail in status.details[2:]):
            continue
        info = error_details_pb2.ErrorInfo()
        status.details[0].Unpack(info)
        if len(info.metadata) > 1:
            info.metadata.clear()
            info.metadata["flow_id"] = flow_id
            status.details[0].Pack(info)
        elif len(status.message) > MAX_TEXT:
            status.message = _cut(status.message)
        elif len(status.details) > 2:
            del status.details[2:]
        else:
            return


def _drop_last_violation(detail: any_pb2.Any) -> bool:
    """Remove the last violation of a packed BadRequest, PreconditionFailure or QuotaFailure, if it has more
    than one."""
    for kind, name in VIOLATION_LISTS:
        if detail.Is(kind.DESCRIPTOR):
            unpacked = kind()
            detail.Unpack(unpacked)
            items = getattr(unpacked, name)
            if len(items) <= 1:
                return False
            del items[-1]
            detail.Pack(unpacked)
            return True
    return False


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed
