"""The catalogue of every error reason the emulator sends, with its status code, meaning and details.

Each ``Reason`` is defined once here and raised through the error class of its code (``errors.py``). The
README's error catalogue is generated from this module (``python -m fleet_emulator.domain.reasons``) and a
test keeps the two in step.
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass

DOMAIN = "fleet-emulator.moia.io"


class Code(enum.Enum):
    """gRPC status codes by their canonical names (the numbers are gRPC's)."""

    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    INTERNAL = 13
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


# Details attached by code, beyond the ErrorInfo and RequestInfo (flow id) that every error carries.
DETAILS_BY_CODE: dict[Code, tuple[str, ...]] = {
    Code.INVALID_ARGUMENT: ("BadRequest",),
    Code.DEADLINE_EXCEEDED: (),
    Code.NOT_FOUND: ("ResourceInfo",),
    Code.ALREADY_EXISTS: ("ResourceInfo",),
    Code.PERMISSION_DENIED: ("ResourceInfo",),
    Code.RESOURCE_EXHAUSTED: ("RetryInfo", "QuotaFailure"),
    Code.FAILED_PRECONDITION: ("PreconditionFailure",),
    Code.ABORTED: ("ResourceInfo",),
    Code.OUT_OF_RANGE: (),
    Code.INTERNAL: (),
    Code.UNAVAILABLE: ("RetryInfo",),
    Code.UNAUTHENTICATED: (),
}


@dataclass(frozen=True)
class Reason:
    name: str
    code: Code
    meaning: str
    resource_info: bool = True

    @property
    def details(self) -> tuple[str, ...]:
        """Detail messages sent with this reason, always starting with ErrorInfo and RequestInfo."""
        extra = DETAILS_BY_CODE[self.code]
        if not self.resource_info:
            extra = tuple(d for d in extra if d != "ResourceInfo")
        return ("ErrorInfo", "RequestInfo", *extra)


REQUEST_MALFORMED = Reason(
    "REQUEST_MALFORMED",
    Code.INVALID_ARGUMENT,
    "The request bytes are not a valid message of the RPC's request type.",
)
REQUEST_TOO_LARGE = Reason(
    "REQUEST_TOO_LARGE",
    Code.INVALID_ARGUMENT,
    "The request is larger than the 4 MiB a request may have.",
)
FIELD_INVALID = Reason(
    "FIELD_INVALID", Code.INVALID_ARGUMENT, "One or more request fields are invalid; BadRequest names each."
)
PAGE_TOKEN_MISMATCH = Reason(
    "PAGE_TOKEN_MISMATCH",
    Code.INVALID_ARGUMENT,
    "The page token was issued for other request parameters (another fleet_id or RPC).",
)
PAGE_TOKEN_NOT_FOUND = Reason(
    "PAGE_TOKEN_NOT_FOUND",
    Code.NOT_FOUND,
    "The page token is unknown or garbled.",
    resource_info=False,
)
PAGE_TOKEN_EXPIRED = Reason(
    "PAGE_TOKEN_EXPIRED",
    Code.NOT_FOUND,
    "The page token has expired; start again from the first page.",
    resource_info=False,
)
FLEET_NOT_FOUND = Reason("FLEET_NOT_FOUND", Code.NOT_FOUND, "No fleet has this id.")
VEHICLE_NOT_FOUND = Reason("VEHICLE_NOT_FOUND", Code.NOT_FOUND, "No vehicle has this id.")
FLEET_ALREADY_EXISTS = Reason("FLEET_ALREADY_EXISTS", Code.ALREADY_EXISTS, "A fleet with this id exists.")
VEHICLE_ALREADY_EXISTS = Reason(
    "VEHICLE_ALREADY_EXISTS", Code.ALREADY_EXISTS, "A vehicle with this id exists."
)
FAULT_NOT_FOUND = Reason("FAULT_NOT_FOUND", Code.NOT_FOUND, "No fault rule has this id in the namespace.")
SCENARIO_INVALID = Reason(
    "SCENARIO_INVALID",
    Code.INVALID_ARGUMENT,
    "The scenario does not follow scenario.schema.json; BadRequest names each problem with its line.",
)
BACKEND_UNAVAILABLE = Reason(
    "BACKEND_UNAVAILABLE",
    Code.UNAVAILABLE,
    "The emulator's storage backend cannot be reached; retry after the RetryInfo delay.",
)
EVENT_STREAM_NOT_FOUND = Reason(
    "EVENT_STREAM_NOT_FOUND",
    Code.NOT_FOUND,
    "No durable event stream has this event_id; each fleet's is in Fleet.vehicle_events_id.",
)
MESSAGE_ID_EXPIRED = Reason(
    "MESSAGE_ID_EXPIRED",
    Code.OUT_OF_RANGE,
    "Events after last_message_id were trimmed by retention; metadata names the oldest retained id.",
)
MESSAGE_ID_UNKNOWN = Reason(
    "MESSAGE_ID_UNKNOWN",
    Code.OUT_OF_RANGE,
    "last_message_id is newer than anything ever written to the stream.",
)
TOKEN_MISSING = Reason(
    "TOKEN_MISSING",
    Code.UNAUTHENTICATED,
    "The call has no `authorization: Bearer <token>` header, and the auth mode asks for one.",
)
TOKEN_INVALID = Reason(
    "TOKEN_INVALID",
    Code.UNAUTHENTICATED,
    "The bearer token is malformed, not signed by this emulator, or lacks a subject or an expiry.",
)
TOKEN_EXPIRED = Reason(
    "TOKEN_EXPIRED",
    Code.UNAUTHENTICATED,
    "The bearer token's expiry has passed on the emulator's clock; get a new token.",
)
FLEET_NOT_IN_SCOPE = Reason(
    "FLEET_NOT_IN_SCOPE",
    Code.PERMISSION_DENIED,
    "The token's fleet scopes do not include the fleet (checked before whether the fleet or vehicle exists).",
)
RATE_LIMITED = Reason(
    "RATE_LIMITED",
    Code.RESOURCE_EXHAUSTED,
    "The client exceeded the RPC's rate limit; retry after the RetryInfo delay.",
)
VEHICLE_ASLEEP = Reason(
    "VEHICLE_ASLEEP",
    Code.FAILED_PRECONDITION,
    "The vehicle is asleep: wake it up (WakeUpVehicle) and wait until it is online.",
)
VEHICLE_OFFLINE = Reason(
    "VEHICLE_OFFLINE",
    Code.FAILED_PRECONDITION,
    "The vehicle is offline and cannot be reached, not even to wake it up.",
)
IDEMPOTENCY_KEY_REUSED = Reason(
    "IDEMPOTENCY_KEY_REUSED",
    Code.INVALID_ARGUMENT,
    "The idempotency key was first used for another command or vehicle.",
)
IDEMPOTENCY_KEY_IN_USE = Reason(
    "IDEMPOTENCY_KEY_IN_USE",
    Code.UNAVAILABLE,
    "A command with this idempotency key is still running (through another replica): retry after a moment.",
)
ETAG_MISMATCH = Reason(
    "ETAG_MISMATCH",
    Code.ABORTED,
    "The vehicle changed since the etag was read; read it again and reapply the change.",
)
POOR_CONNECTION = Reason(
    "POOR_CONNECTION",
    Code.DEADLINE_EXCEEDED,
    "A poor-connection fault: the vehicle did not answer in time; the command may or may not have run.",
)
CONNECTION_LOST = Reason(
    "CONNECTION_LOST",
    Code.UNAVAILABLE,
    "A poor-connection fault: the connection to the vehicle broke; the command may or may not have run.",
)
ADMIN_TOKEN_MISSING = Reason(
    "ADMIN_TOKEN_MISSING",
    Code.UNAUTHENTICATED,
    "The emulator runs with --admin-token: admin calls need `authorization: Bearer <admin token>`.",
)
ADMIN_TOKEN_INVALID = Reason(
    "ADMIN_TOKEN_INVALID",
    Code.UNAUTHENTICATED,
    "The bearer token of the admin call is not the emulator's admin token.",
)
ADMIN_SERVICE_OFF = Reason(
    "ADMIN_SERVICE_OFF",
    Code.PERMISSION_DENIED,
    "The emulator runs with --no-admin: the web console shows the emulated API but cannot steer it.",
)
NAMESPACE_LIMIT_REACHED = Reason(
    "NAMESPACE_LIMIT_REACHED",
    Code.RESOURCE_EXHAUSTED,
    "The emulator holds --max-namespaces namespaces: delete one (DeleteNamespace) or wait until an idle one "
    "is dropped.",
)
NAMESPACE_DELETED = Reason(
    "NAMESPACE_DELETED",
    Code.UNAVAILABLE,
    "The namespace was deleted (DeleteNamespace) while the call ran; calling again starts it afresh.",
)
EMULATOR_STOPPING = Reason(
    "EMULATOR_STOPPING",
    Code.UNAVAILABLE,
    "The emulator is stopping (SIGTERM, SIGINT): open streams end at once; resume with the last message id.",
)
FAULT_LIMIT_REACHED = Reason(
    "FAULT_LIMIT_REACHED",
    Code.FAILED_PRECONDITION,
    "The namespace has as many fault rules as it may keep; delete some (DeleteFault, ClearFaults) first.",
)
INTERNAL_ERROR = Reason(
    "INTERNAL_ERROR",
    Code.INTERNAL,
    "A bug in the emulator, never caused by input; please report it with the flow id.",
)

CATALOGUE: dict[str, Reason] = {
    r.name: r
    for r in globals().values()
    if isinstance(r, Reason)  # every Reason defined above
}


def markdown_table() -> str:
    """The catalogue as the Markdown table in the README."""
    rows = ["| reason | code | meaning | details |", "| --- | --- | --- | --- |"]
    for r in sorted(CATALOGUE.values(), key=lambda r: (r.code.value, r.name)):
        rows.append(f"| `{r.name}` | {r.code.name} ({r.code.value}) | {r.meaning} | {', '.join(r.details)} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown_table())
