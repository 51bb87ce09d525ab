"""Fault rules of a namespace: matching calls fail, slow down, have their stream broken or stalled, or, for
vehicle commands, a poor connection (the command runs or not, and the client gets a time-out either way).

A rule matches an RPC (a method name, a full name or ``*``) and optionally a fleet or vehicle; it acts on
its next ``times`` matching calls (or until deleted), and, with a ``probability`` below 1, on a
deterministic share of them drawn from its own seeded generator: the same calls are hit in every run.
Rules are tried in creation order; the first that matches and fires acts. The rules and their counts are
kept in the namespace's ``ControlStore`` (``fault_book.py``), so that replicas share them.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from fleet_emulator.domain import reasons
from fleet_emulator.domain.errors import DeadlineExceeded, EmulatorError, Unavailable, Violations
from fleet_emulator.domain.validation import canonical_vehicle_id, check_fleet_id

DEFAULT_FAULT_REASON = "FAULT_INJECTED"
MAX_RULES = 1000  # a namespace's
MAX_METHOD = 200
MAX_MESSAGE = 1024
MAX_DETAILS_BYTES = 2048
MAX_REASON = 63
REASON = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*")
DEADLINE_EXCEEDED = 4
UNAVAILABLE = 14


@dataclass(frozen=True)
class FailCall:
    code: int
    message: str
    reason: str = DEFAULT_FAULT_REASON
    details: tuple[bytes, ...] = ()  # serialized google.protobuf.Any messages, opaque to the domain
    details_size: int = 0  # their bytes, as the API layer measured them


@dataclass(frozen=True)
class AddLatency:
    delay: timedelta


@dataclass(frozen=True)
class BreakStream:
    after_messages: int
    code: int
    message: str


@dataclass(frozen=True)
class StallStream:
    after_messages: int


@dataclass(frozen=True)
class PoorConnection:
    """A vehicle command over a poor connection (seed 000): the client gets DEADLINE_EXCEEDED or UNAVAILABLE,
    after the command ran (``executed``) or without running it."""

    executed: bool
    code: int = DEADLINE_EXCEEDED


Action = FailCall | AddLatency | BreakStream | StallStream | PoorConnection
STREAM_ONLY = (BreakStream, StallStream)
COMMAND_RPCS = frozenset(
    {"WakeUpVehicle", "LockVehicle", "UnlockVehicle", "HonkHorn", "FlashLights", "UpdateVehicle"}
)
RETRY_AFTER_LOST_CONNECTION = timedelta(seconds=1)


def poor_connection_error(action: PoorConnection) -> EmulatorError:
    """What the client of a call hit by a poor connection gets: it cannot tell whether the command ran."""
    advice = "the command may or may not have run: read the vehicle's state before retrying"
    if action.code == UNAVAILABLE:
        return Unavailable(
            reasons.CONNECTION_LOST,
            f"the connection to the vehicle broke; {advice}",
            RETRY_AFTER_LOST_CONNECTION,
        )
    return DeadlineExceeded(reasons.POOR_CONNECTION, f"the vehicle did not answer in time; {advice}")


@dataclass
class FaultRule:
    method: str
    action: Action
    fleet_id: str = ""
    vehicle_id: str = ""
    times: int = 0
    probability: float = 0.0
    seed: int = 0
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    hits: int = 0

    def matches(self, full_method: str, streaming: bool, fleet_id: str, vehicle_id: str) -> bool:
        name = full_method.rsplit("/", 1)[-1]
        if self.method not in ("*", name, full_method.lstrip("/")):
            return False
        if isinstance(self.action, STREAM_ONLY) and not streaming:
            return False
        if isinstance(self.action, PoorConnection) and (streaming or name not in COMMAND_RPCS):
            return False
        return (not self.fleet_id or self.fleet_id == fleet_id) and (
            not self.vehicle_id or self.vehicle_id == vehicle_id
        )


def check_rule(rule: FaultRule) -> None:
    """INVALID_ARGUMENT naming every field of a rule that cannot work, or whose texts and details would
    not fit an error's trailers."""
    violations = Violations()
    if not rule.method:
        violations.add("fault.method", 'is required: a method name, a full name or "*"')
    elif len(rule.method) > MAX_METHOD:
        violations.add("fault.method", f"must be at most {MAX_METHOD} characters")
    if rule.fleet_id:
        check_fleet_id(rule.fleet_id, violations, "fault.fleet_id")
    if rule.vehicle_id:
        canonical_vehicle_id(rule.vehicle_id, violations, "fault.vehicle_id")
    if rule.times < 0:
        violations.add("fault.times", "must not be negative")
    if not 0 <= rule.probability <= 1:
        violations.add("fault.probability", "must be between 0 and 1")
    if 0 < rule.probability < 1 and not rule.seed:
        violations.add("fault.seed", "is required with a probability below 1, so that runs repeat")
    action = rule.action
    if isinstance(action, FailCall):
        if not 1 <= action.code <= 16:
            violations.add("fault.fail.code", "must be a google.rpc.Code other than OK (1 to 16)")
        if len(action.reason) > MAX_REASON or not REASON.fullmatch(action.reason):
            violations.add("fault.fail.reason", "must be UPPER_SNAKE_CASE, at most 63 characters")
        if len(action.message) > MAX_MESSAGE:
            violations.add("fault.fail.message", f"must be at most {MAX_MESSAGE} characters")
        if action.details_size > MAX_DETAILS_BYTES:
            violations.add("fault.fail.details", f"must take at most {MAX_DETAILS_BYTES} bytes together")
    if isinstance(action, BreakStream) and len(action.message) > MAX_MESSAGE:
        violations.add("fault.break_stream.message", f"must be at most {MAX_MESSAGE} characters")
    if isinstance(action, BreakStream) and not 1 <= action.code <= 16:
        violations.add("fault.break_stream.code", "must be a google.rpc.Code other than OK (1 to 16)")
    if isinstance(action, STREAM_ONLY) and action.after_messages < 0:
        violations.add("fault.after_messages", "must not be negative")
    if isinstance(action, AddLatency) and not timedelta(0) <= action.delay <= timedelta(minutes=10):
        violations.add("fault.latency.delay", "must be between 0 and 10 minutes")
    if isinstance(action, PoorConnection):
        if action.code not in (DEADLINE_EXCEEDED, UNAVAILABLE):
            violations.add("fault.poor_connection.code", "must be DEADLINE_EXCEEDED (4) or UNAVAILABLE (14)")
        if rule.method and rule.method != "*" and rule.method.rsplit("/", 1)[-1] not in COMMAND_RPCS:
            commands = ", ".join(sorted(COMMAND_RPCS))
            violations.add("fault.method", f"a poor connection acts on commands only: {commands} or *")
    violations.raise_if_any(reasons.FIELD_INVALID)
