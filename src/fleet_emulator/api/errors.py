"""The one place where domain errors become gRPC statuses with rich details (API.md section 3, AIP-193).

Every status carries a ``google.rpc.Status`` in the ``grpc-status-details-bin`` trailer with the same code
and message, exactly one ``ErrorInfo`` (reason, domain, metadata with the flow id) and a ``RequestInfo``
whose ``request_id`` is the flow id, plus the details of its code (see ``domain/errors.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from fleet_emulator.api.convert import duration
from fleet_emulator.domain import errors as domain
from fleet_emulator.domain.reasons import DOMAIN


def _details(error: domain.EmulatorError) -> list[Message]:
    """The code-specific detail messages of an error (after ErrorInfo and RequestInfo)."""
    if isinstance(error, domain.InvalidArgument):
        return [
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in error.violations
                ]
            )
        ]
    if isinstance(error, domain.NotFound) and error.reason.resource_info:
        return [
            error_details_pb2.ResourceInfo(
                resource_type=error.resource_type,
                resource_name=error.resource_name,
                description=error.message,
            )
        ]
    if isinstance(error, domain.FailedPrecondition):
        return [
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=v.type, subject=v.subject, description=v.description
                    )
                    for v in error.violations
                ]
            )
        ]
    if isinstance(error, domain.Unavailable):
        retry: list[Message] = [error_details_pb2.RetryInfo(retry_delay=duration(error.retry_after))]
        if isinstance(error, domain.ResourceExhausted):
            quota = error_details_pb2.QuotaFailure(
                violations=[
                    error_details_pb2.QuotaFailure.Violation(subject=v.subject, description=v.description)
                    for v in error.violations
                ]
            )
            retry.append(quota)
        return retry
    return []


def to_status(error: domain.EmulatorError, flow_id: str) -> grpc.Status:
    """The gRPC status (code, message and details trailer) for a domain error."""
    extra = [_packed(m) for m in _details(error)]
    return _status(error.code.value, error.message, error.reason.name, error.metadata, extra, flow_id)


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
    info = error_details_pb2.ErrorInfo(
        reason=reason, domain=DOMAIN, metadata={"flow_id": flow_id, **metadata}
    )
    request = error_details_pb2.RequestInfo(request_id=flow_id)
    details = [_packed(info), _packed(request), *extra]
    result: grpc.Status = rpc_status.to_status(status_pb2.Status(code=code, message=message, details=details))
    return result


def _packed(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed
