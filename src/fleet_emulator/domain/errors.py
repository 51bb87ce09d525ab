"""Domain errors: one class per wire status code, each carrying a catalogued reason and its details.

The tree, with the details each class carries beyond the ``ErrorInfo`` and ``RequestInfo`` that every error
gets::

    EmulatorError                      reason, message, metadata
     +-- InvalidArgument               field violations (BadRequest)
     +-- NotFound                      resource type and name (ResourceInfo); page tokens use ErrorInfo only
     |    +-- AlreadyExists            resource type and name (ResourceInfo)
     +-- OutOfRange                    -
     |    +-- PermissionDenied         resource type and name (ResourceInfo)
     |    +-- Aborted                  resource type and name (ResourceInfo)
     +-- FailedPrecondition            precondition violations (PreconditionFailure)
     +-- Unavailable                   retry delay (RetryInfo)
     |    +-- ResourceExhausted        retry delay (RetryInfo), quota violations (QuotaFailure)
     +-- Unauthenticated               -
     +-- DeadlineExceeded              -
     +-- Internal                      - (a bug in the emulator; never caused by input)

``api/errors.py`` turns them into ``google.rpc.Status``; the reasons they may carry are listed in
``reasons.py``, and a reason may only be raised with the class of its own code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from fleet_emulator.domain.reasons import Code, Reason


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass(frozen=True)
class PreconditionViolation:
    type: str
    subject: str
    description: str


MAX_SHOWN = 60
ELLIPSIS = "…"


def shown(text: str, most: int = MAX_SHOWN) -> str:
    """Text cut to at most ``most`` characters, ending in an ellipsis when cut: client input quoted in an
    error (which travels in a trailer) or kept in the journal."""
    return text if len(text) <= most else text[: most - 1] + ELLIPSIS


class EmulatorError(Exception):
    """Base of every error a client may see; never raised itself."""

    code: ClassVar[Code]

    def __init__(self, reason: Reason, message: str, **metadata: str) -> None:
        if reason.code is not self.code:
            raise TypeError(f"reason {reason.name} has code {reason.code.name}, not {self.code.name}")
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata = metadata


class InvalidArgument(EmulatorError):
    code = Code.INVALID_ARGUMENT

    def __init__(self, reason: Reason, violations: list[FieldViolation], **metadata: str) -> None:
        message = "; ".join(f"{v.field}: {v.description}" for v in violations)
        fields = ",".join(dict.fromkeys(v.field for v in violations))
        super().__init__(reason, f"invalid request: {message}", fields=fields, **metadata)
        self.violations = violations


class NotFound(EmulatorError):
    code = Code.NOT_FOUND

    def __init__(
        self,
        reason: Reason,
        message: str,
        *,
        resource_type: str = "",
        resource_name: str = "",
        **metadata: str,
    ) -> None:
        super().__init__(reason, message, **metadata)
        self.resource_type = resource_type
        self.resource_name = resource_name


class AlreadyExists(NotFound):
    """Same details as NotFound (the resource), another code."""

    code = Code.ALREADY_EXISTS


class PermissionDenied(NotFound):
    """Same details as NotFound (the resource the caller may not see), another code."""

    code = Code.PERMISSION_DENIED


class Aborted(NotFound):
    """A conflict on a resource (a stale etag): same details as NotFound, another code."""

    code = Code.ABORTED


class Unauthenticated(EmulatorError):
    code = Code.UNAUTHENTICATED


class DeadlineExceeded(EmulatorError):
    code = Code.DEADLINE_EXCEEDED


class OutOfRange(EmulatorError):
    code = Code.OUT_OF_RANGE


class FailedPrecondition(EmulatorError):
    code = Code.FAILED_PRECONDITION

    def __init__(
        self, reason: Reason, message: str, violations: list[PreconditionViolation], **metadata: str
    ) -> None:
        super().__init__(reason, message, **metadata)
        self.violations = violations


class Unavailable(EmulatorError):
    code = Code.UNAVAILABLE

    def __init__(self, reason: Reason, message: str, retry_after: timedelta, **metadata: str) -> None:
        super().__init__(reason, message, **metadata)
        self.retry_after = retry_after


@dataclass(frozen=True)
class QuotaViolation:
    subject: str
    description: str


class ResourceExhausted(Unavailable):
    """Same retry delay as Unavailable, plus the quota that ran out."""

    code = Code.RESOURCE_EXHAUSTED

    def __init__(
        self,
        reason: Reason,
        message: str,
        retry_after: timedelta,
        violations: list[QuotaViolation],
        **metadata: str,
    ) -> None:
        super().__init__(reason, message, retry_after, **metadata)
        self.violations = violations


class Internal(EmulatorError):
    code = Code.INTERNAL


class Violations:
    """Collects every invalid field of a request so that one ``InvalidArgument`` names them all."""

    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def raise_if_any(self, reason: Reason) -> None:
        if self.items:
            raise InvalidArgument(reason, self.items)
