"""The rules of the client report: each finds, among one client's journal entries, the calls that broke a
practice of seeds 000 and 001, with a note on what each did wrong.

A rule gets the client's entries in journal order and yields ``ReportedCall``s. Calls are told apart by
``call_key``: the RPC's short name (so that ``v1.GetVehicle`` and ``v2.GetVehicle`` are the same RPC) and
the fleet, vehicle and stream the request names. A rule looks at the outcome of a call (code, reason,
retry delay) only once the call has finished; the calls it flags may still be running.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleet_emulator.domain import reasons
from fleet_emulator.domain.journal import JournalEntry

READS = frozenset({"GetVehicle", "GetFleet", "PollVehicleEvents", "ListVehicles", "ListFleets"})
COMMANDS = frozenset({"LockVehicle", "UnlockVehicle", "HonkHorn", "FlashLights"})
NOT_IDEMPOTENT = frozenset({"HonkHorn", "FlashLights"})
# A command that ended with one of these codes may or may not have run (seed 000).
OUTCOME_UNKNOWN = {1: "CANCELLED", 4: "DEADLINE_EXCEEDED", 14: "UNAVAILABLE"}
TARGETS = ("fleet_id", "vehicle_id", "event_id")
RENEW_WITHIN = timedelta(minutes=1)
ISSUE_TOKEN = "IssueToken"

CallKey = tuple[str, ...]


@dataclass(frozen=True)
class ReportedCall:
    entry: JournalEntry
    note: str


def rpc(entry: JournalEntry) -> str:
    """The method's short name, the same in every version: ``GetVehicle``."""
    return entry.method.rsplit("/", 1)[-1]


def field(entry: JournalEntry, name: str) -> str:
    """A string field of the request, empty when the request has no such field (or did not parse)."""
    request = entry.request.message if entry.request is not None else None
    if request is None or name not in request.DESCRIPTOR.fields_by_name:
        return ""
    return str(getattr(request, name))


def call_key(entry: JournalEntry) -> CallKey:
    return (rpc(entry), *(field(entry, name) for name in TARGETS))


def described(entry: JournalEntry) -> str:
    """The call as ``GetVehicle(vehicle_id=...)``, with the fields that name what it is about."""
    named = ", ".join(f"{name}={value}" for name in TARGETS if (value := field(entry, name)))
    return f"{rpc(entry)}({named})"


def span(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    return f"{round(seconds, 3):g} s" if abs(seconds) < 120 else f"{round(seconds / 60, 1):g} min"


def polling_too_often(calls: Sequence[JournalEntry], interval: timedelta) -> Iterator[ReportedCall]:
    """A read of the same data (first pages only) sooner than ``interval`` after the last read that did
    not fail; a call after a failure is a retry, which ``retried_too_soon`` judges."""
    last_read: dict[CallKey, JournalEntry] = {}
    for entry in calls:
        if rpc(entry) not in READS or field(entry, "page_token"):
            continue
        key = call_key(entry)
        previous = last_read.get(key)
        if previous is not None and timedelta(0) <= entry.start_time - previous.start_time < interval:
            gap = span(entry.start_time - previous.start_time)
            note = f"{described(entry)} {gap} after call {previous.sequence}"
            yield ReportedCall(entry, f"{note}, sooner than {span(interval)}")
        if entry.code == 0:
            last_read[key] = entry


def token_renewed_too_early(calls: Sequence[JournalEntry]) -> Iterator[ReportedCall]:
    """An IssueToken while the token of the subject's previous IssueToken had more than a minute left."""
    previous: tuple[int, datetime] | None = None  # the sequence and expiry of the last token issued
    for entry in calls:
        if rpc(entry) != ISSUE_TOKEN:
            continue
        if previous is not None and (left := previous[1] - entry.start_time) > RENEW_WITHIN:
            valid = f"was valid for another {span(left)}"
            yield ReportedCall(entry, f"new token while the one of call {previous[0]} {valid}")
        if entry.token_expiry is not None:
            previous = (entry.sequence, entry.token_expiry)


def expired_token_used(calls: Sequence[JournalEntry]) -> Iterator[ReportedCall]:
    for entry in calls:
        if entry.finished and entry.reason == reasons.TOKEN_EXPIRED.name:
            since = f" {span(entry.start_time - entry.token_expiry)} ago" if entry.token_expiry else ""
            yield ReportedCall(entry, f"{described(entry)} with a token that expired{since}")


def retried_too_soon(calls: Sequence[JournalEntry]) -> Iterator[ReportedCall]:
    """The same call again before the RetryInfo delay of the last failure that sent one had passed."""
    failures: dict[CallKey, JournalEntry] = {}
    for entry in calls:
        key = call_key(entry)
        failed = failures.get(key)
        if failed is not None and failed.retry_delay is not None:
            waited = entry.start_time - failed.start_time
            if waited < failed.retry_delay:
                note = (
                    f"{described(entry)} {span(waited)} after call {failed.sequence} failed with "
                    f"{failed.reason}, which asked to wait {span(failed.retry_delay)}"
                )
                yield ReportedCall(entry, note)
        if entry.finished and entry.retry_delay is not None:
            failures[key] = entry


def _unsafe(first: JournalEntry, retry: JournalEntry) -> str:
    """Why ``retry`` may make the vehicle act twice, or '' if both carry the same idempotency key."""
    key, first_key = field(retry, "idempotency_key"), field(first, "idempotency_key")
    if not key:
        return "without an idempotency_key"
    if not first_key:
        return "with an idempotency_key the first attempt did not have"
    return "" if key == first_key else "with another idempotency_key than the first attempt"


def unsafe_command_retry(calls: Sequence[JournalEntry]) -> Iterator[ReportedCall]:
    """The next HonkHorn or FlashLights to the same vehicle after one whose outcome is unknown, unless both
    carry the same idempotency key."""
    unknown: dict[CallKey, JournalEntry] = {}
    for entry in calls:
        if rpc(entry) not in NOT_IDEMPOTENT:
            continue
        key = call_key(entry)
        first = unknown.pop(key, None)
        if first is not None and (problem := _unsafe(first, entry)):
            outcome = OUTCOME_UNKNOWN[first.code]
            note = f"{described(entry)} retried {problem} after call {first.sequence} ended {outcome}"
            yield ReportedCall(entry, f"{note}: the vehicle may have executed it twice")
        if entry.finished and entry.code in OUTCOME_UNKNOWN:
            unknown[key] = entry


def command_to_sleeping_vehicle(calls: Sequence[JournalEntry]) -> Iterator[ReportedCall]:
    """Commands refused with VEHICLE_ASLEEP; the note says whether the client had woken the vehicle."""
    wake_ups: dict[str, JournalEntry] = {}
    for entry in calls:
        vehicle_id = field(entry, "vehicle_id")
        if rpc(entry) == "WakeUpVehicle":
            wake_ups[vehicle_id] = entry
        elif rpc(entry) in COMMANDS and entry.finished and entry.reason == reasons.VEHICLE_ASLEEP.name:
            woken = wake_ups.get(vehicle_id)
            note = (
                f"sent {span(entry.start_time - woken.start_time)} after WakeUpVehicle (call "
                f"{woken.sequence}), before the vehicle was online"
                if woken is not None
                else "sent to an asleep vehicle that the client never woke up"
            )
            yield ReportedCall(entry, f"{described(entry)} {note}")


def stream_reopened_without_resume(calls: Sequence[JournalEntry]) -> Iterator[ReportedCall]:
    """A StreamVehicleEvents without last_message_id after an earlier stream of the same event_id that
    delivered at least one event."""
    delivered: dict[str, JournalEntry] = {}
    for entry in calls:
        if rpc(entry) != "StreamVehicleEvents":
            continue
        event_id = field(entry, "event_id")
        earlier = delivered.get(event_id)
        if earlier is not None and not entry.resumed_from:
            complete = len(earlier.messages) == earlier.message_count  # else the last id is not kept
            last = f" up to message_id {earlier.messages[-1].message.message_id}" if complete else ""
            note = (
                f"{described(entry)} opened without last_message_id after call {earlier.sequence} "
                f"received events{last}: the events in between are lost"
            )
            yield ReportedCall(entry, note)
        if any(kept.message.HasField("event") for kept in entry.messages):
            delivered[event_id] = entry


def deprecated_version_used(
    calls: Sequence[JournalEntry], successors: Mapping[str, str]
) -> Iterator[ReportedCall]:
    """Every call of a deprecated version (``successors`` maps each to the package to move to)."""
    for entry in calls:
        if successor := successors.get(entry.version):
            yield ReportedCall(entry, f"{entry.version} is deprecated; move to {successor}")
