"""The client report: from a namespace's journal, which practices of seeds 000 and 001 each client broke.

Calls are grouped by ``JournalEntry.client`` (the token's subject, a digest of the token, or the peer's
host); ``client_reports`` runs every practice's rule (``report_rules.py``) over each client's calls and keeps
the practices that found something, each with its advice and at most ``MAX_CALLS`` of the calls that show
it. A report is computed when asked for, from the entries the journal still holds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from fleet_emulator.domain import report_rules as rules
from fleet_emulator.domain.journal import JournalEntry
from fleet_emulator.domain.report_rules import ReportedCall

MAX_CALLS = 20

Rule = Callable[[Sequence[JournalEntry]], Iterator[ReportedCall]]


@dataclass(frozen=True)
class Practice:
    name: str
    advice: str
    rule: Rule


@dataclass(frozen=True)
class Finding:
    practice: str
    advice: str
    calls: tuple[ReportedCall, ...]


@dataclass(frozen=True)
class ClientReport:
    client: str
    findings: tuple[Finding, ...]


def practices(poll_interval: timedelta, successors: Mapping[str, str]) -> tuple[Practice, ...]:
    """Every practice, in the order of the report; ``successors`` maps deprecated versions to theirs."""
    interval = rules.span(poll_interval)
    moves = ", ".join(f"from {old} to {new}" for old, new in successors.items())
    return (
        Practice(
            "POLLING_TOO_OFTEN",
            f"Read the same data at most every {interval}: follow changes with StreamVehicleEvents "
            "(resumed with last_message_id) or SubscribeToVehicleStates instead of reading again.",
            functools.partial(rules.polling_too_often, interval=poll_interval),
        ),
        Practice(
            "TOKEN_RENEWED_TOO_EARLY",
            "Keep using a token until it is within a minute of its expiry, and only then get a new one; "
            "share it between the processes of the client.",
            rules.token_renewed_too_early,
        ),
        Practice(
            "EXPIRED_TOKEN_USED",
            "Check the token's expiry before a call and renew it when less than a minute is left.",
            rules.expired_token_used,
        ),
        Practice(
            "RETRIED_TOO_SOON",
            "After RESOURCE_EXHAUSTED or UNAVAILABLE, wait at least the RetryInfo's retry_delay before "
            "calling again.",
            rules.retried_too_soon,
        ),
        Practice(
            "UNSAFE_COMMAND_RETRY",
            "HonkHorn and FlashLights act again on every execution: send an idempotency_key and retry a "
            "call that timed out or lost its connection with the same key, or check the vehicle first.",
            rules.unsafe_command_retry,
        ),
        Practice(
            "COMMAND_TO_SLEEPING_VEHICLE",
            "Wake the vehicle up (WakeUpVehicle), then wait until GetVehicle or its events show it ONLINE "
            "(10 to 60 s) before sending commands.",
            rules.command_to_sleeping_vehicle,
        ),
        Practice(
            "STREAM_REOPENED_WITHOUT_RESUME",
            "Keep the message_id of the last message received and reopen the stream with it as "
            "last_message_id, so that no event is lost.",
            rules.stream_reopened_without_resume,
        ),
        Practice(
            "DEPRECATED_VERSION_USED",
            f"Move to the version named in the link header of every deprecated response ({moves}).",
            functools.partial(rules.deprecated_version_used, successors=successors),
        ),
    )


def _listed(calls: list[ReportedCall]) -> tuple[ReportedCall, ...]:
    """The first ``MAX_CALLS`` calls; the last one listed says how many more there were."""
    if len(calls) <= MAX_CALLS:
        return tuple(calls)
    last, more = calls[MAX_CALLS - 1], len(calls) - MAX_CALLS
    return (*calls[: MAX_CALLS - 1], replace(last, note=f"{last.note} (and {more} more calls like it)"))


def client_reports(
    entries: Iterable[JournalEntry], poll_interval: timedelta, successors: Mapping[str, str]
) -> list[ClientReport]:
    """The clients that broke a practice, by name, each with its findings in the order of ``practices``."""
    by_client: dict[str, list[JournalEntry]] = {}
    for entry in sorted(entries, key=lambda e: e.sequence):
        by_client.setdefault(entry.client, []).append(entry)
    checked, reports = practices(poll_interval, successors), []
    for client, calls in sorted(by_client.items()):
        findings = tuple(
            Finding(practice.name, practice.advice, _listed(found))
            for practice in checked
            if (found := list(practice.rule(calls)))
        )
        if findings:
            reports.append(ClientReport(client, findings))
    return reports
