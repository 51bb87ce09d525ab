"""The client report's rules over synthetic journals: for each practice a careless client that breaks it and
a careful one that does not, then a whole report with one client of each kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2 as admin
from fleet_emulator._gen.moia.fleet.state.v1 import fleet_state_pb2 as v1
from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2 as v1beta4
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from fleet_emulator.api.shrink import kept
from fleet_emulator.domain.journal import JournalEntry
from fleet_emulator.domain.report import MAX_CALLS, ClientReport, client_reports

T0 = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
INTERVAL = timedelta(seconds=5)
SUCCESSORS = {"v1beta4": "moia.fleet.state.v2"}
CAR = "94d36e21-ca69-4a5b-b2b7-8068122e7362"
OTHER_CAR = "0f6c7e1a-33b2-4a49-9d6e-1c1c1c1c1c1c"
EVENTS = "fleets/hamburg/vehicle-events"
UNAVAILABLE, DEADLINE_EXCEEDED, FAILED_PRECONDITION, UNAUTHENTICATED = 14, 4, 9, 16


@dataclass
class Journal:
    """Journal entries in the order a test adds them, each by ``client`` unless told otherwise."""

    client: str = "alice"
    entries: list[JournalEntry] = field(default_factory=list)

    def call(
        self,
        request: Any,
        at: float = 0,
        *,
        code: int = 0,
        reason: str = "",
        retry_after: float | None = None,
        finished: bool = True,
        messages: tuple[Any, ...] = (),
        client: str = "",
        token_expiry: datetime | None = None,
    ) -> JournalEntry:
        """A call of the request's RPC, in the request's version, ``at`` seconds after T0."""
        package = request.DESCRIPTOR.file.package
        version = package.rsplit(".", 1)[-1]
        name = request.DESCRIPTOR.name.removesuffix("Request")
        name = {"Stream": "StreamVehicleEvents", "Poll": "PollVehicleEvents"}.get(name, name)
        service = "AdminService" if package.startswith("emulator.") else "FleetStateService"
        entry = JournalEntry(
            start_time=T0 + timedelta(seconds=at),
            method=f"/{package}.{service}/{name}",
            version="admin" if service == "AdminService" else version,
            metadata={},
            request=kept(request),
            flow_id=f"flow-{len(self.entries) + 1}",
            peer="ipv4:127.0.0.1:50000",
            sequence=len(self.entries) + 1,
            code=code,
            reason=reason,
            retry_delay=None if retry_after is None else timedelta(seconds=retry_after),
            finished=finished,
            messages=[kept(m) for m in messages],
            message_count=len(messages),
            resumed_from=getattr(request, "last_message_id", ""),
            client=client or self.client,
            token_expiry=token_expiry,
        )
        self.entries.append(entry)
        return entry

    def issue_token(self, at: float, lifetime: float, subject: str = "") -> JournalEntry:
        entry = self.call(admin.IssueTokenRequest(subject=subject or self.client), at, client=subject)
        entry.token_expiry = T0 + timedelta(seconds=at + lifetime)
        return entry

    def report(self, interval: timedelta = INTERVAL) -> list[ClientReport]:
        return client_reports(self.entries, interval, SUCCESSORS)

    def flagged(self, interval: timedelta = INTERVAL) -> dict[str, list[int]]:
        """Per practice, the sequence numbers of the calls the report names (of the only client)."""
        reports = self.report(interval)
        assert [r.client for r in reports] in ([], [self.client])
        findings = reports[0].findings if reports else ()
        return {f.practice: [c.entry.sequence for c in f.calls] for f in findings}

    def notes(self, practice: str) -> list[str]:
        return [c.note for f in self.report()[0].findings if f.practice == practice for c in f.calls]


def get(vehicle_id: str = CAR) -> v2.GetVehicleRequest:
    return v2.GetVehicleRequest(vehicle_id=vehicle_id)


def stream(last_message_id: str | None = None, event_id: str = EVENTS) -> v2.StreamRequest:
    return v2.StreamRequest(event_id=event_id, last_message_id=last_message_id)


def position(message_id: str = "1795327200000-0") -> v2.StreamResponse:
    return v2.StreamResponse(message_id=message_id)


def event(message_id: str) -> v2.StreamResponse:
    return v2.StreamResponse(event=v2.Event(id=f"event-{message_id}", vehicle_id=CAR), message_id=message_id)


# Polling


def test_reading_the_same_vehicle_again_within_the_interval_is_polling_too_often_in_any_version() -> None:
    journal = Journal()
    journal.call(v1.GetVehicleRequest(vehicle_id=CAR), 0)
    second = journal.call(get(), 2)
    journal.call(v2.GetFleetRequest(fleet_id="hamburg"), 2)
    journal.call(v2.GetFleetRequest(fleet_id="hamburg"), 6.5)
    journal.call(v2.ListVehiclesRequest(fleet_id="hamburg"), 10)
    journal.call(v2.ListVehiclesRequest(fleet_id="hamburg", page_size=10), 11)
    journal.call(v2.PollRequest(event_id=EVENTS), 20)
    journal.call(v2.PollRequest(event_id=EVENTS, last_message_id="1-0"), 24.9)

    assert journal.flagged() == {"POLLING_TOO_OFTEN": [second.sequence, 4, 6, 8]}
    assert journal.notes("POLLING_TOO_OFTEN")[0] == (
        f"GetVehicle(vehicle_id={CAR}) 2 s after call 1, sooner than 5 s"
    )


def test_reads_at_the_interval_of_other_data_page_through_or_retries_are_not_polling() -> None:
    journal = Journal()
    journal.call(get(), 0)
    journal.call(get(OTHER_CAR), 1)  # another vehicle
    journal.call(get(), 5)  # exactly the interval later
    journal.call(get(), 10, code=UNAVAILABLE, reason="MAINTENANCE", retry_after=1)
    journal.call(get(), 11)  # a retry: 11 s after the last read that did not fail
    journal.call(v2.ListVehiclesRequest(fleet_id="hamburg"), 0)
    journal.call(v2.ListVehiclesRequest(fleet_id="hamburg", page_token="page-2"), 0.1)
    journal.call(v2.ListVehiclesRequest(fleet_id="hamburg", page_token="page-3"), 0.2)
    journal.call(v2.ListVehiclesRequest(fleet_id="hanover"), 0.3)
    journal.call(stream(), 1)
    journal.call(stream("1-0"), 2)  # streams are not polling

    assert journal.flagged() == {}


def test_the_poll_interval_is_the_one_given() -> None:
    journal = Journal()
    journal.call(get(), 0)
    journal.call(get(), 2)

    assert journal.flagged(interval=timedelta(seconds=2)) == {}
    assert journal.flagged(interval=timedelta(seconds=3)) == {"POLLING_TOO_OFTEN": [2]}


def test_reads_by_different_clients_are_judged_apart() -> None:
    journal = Journal()
    journal.call(get(), 0, client="alice")
    journal.call(get(), 1, client="bob")

    assert journal.report() == []


# Tokens


def test_a_new_token_while_the_last_one_has_more_than_a_minute_left_is_renewed_too_early() -> None:
    journal = Journal()
    journal.issue_token(0, lifetime=1800)
    early = journal.issue_token(600, lifetime=1800)

    assert journal.flagged() == {"TOKEN_RENEWED_TOO_EARLY": [early.sequence]}
    assert journal.notes("TOKEN_RENEWED_TOO_EARLY") == [
        "new token while the one of call 1 was valid for another 20 min"
    ]


def test_a_new_token_within_the_last_minute_or_for_another_subject_is_fine() -> None:
    journal = Journal()
    journal.issue_token(0, lifetime=1800)
    journal.issue_token(10, lifetime=1800, subject="bob")
    journal.issue_token(1740, lifetime=1800)  # 60 s left
    journal.issue_token(3540 + 90, lifetime=1800)  # after the last one expired

    assert journal.report() == []


def test_calls_that_failed_with_an_expired_token_are_reported() -> None:
    journal = Journal()
    journal.call(get(), 0, token_expiry=T0 + timedelta(seconds=60))
    journal.call(
        get(), 90, code=UNAUTHENTICATED, reason="TOKEN_EXPIRED", token_expiry=T0 + timedelta(seconds=60)
    )
    journal.call(get(OTHER_CAR), 95, code=UNAUTHENTICATED, reason="TOKEN_EXPIRED")

    assert journal.flagged() == {"EXPIRED_TOKEN_USED": [2, 3]}
    assert journal.notes("EXPIRED_TOKEN_USED") == [
        f"GetVehicle(vehicle_id={CAR}) with a token that expired 30 s ago",
        f"GetVehicle(vehicle_id={OTHER_CAR}) with a token that expired",
    ]


def test_valid_tokens_and_other_auth_failures_are_not_expired_tokens() -> None:
    journal = Journal()
    journal.call(get(), 0, token_expiry=T0 + timedelta(seconds=60))
    journal.call(get(OTHER_CAR), 10, code=UNAUTHENTICATED, reason="TOKEN_INVALID")

    assert journal.report() == []


# Retries


def test_a_retry_before_the_retry_info_delay_is_too_soon() -> None:
    journal = Journal()
    journal.call(get(), 0, code=8, reason="RATE_LIMITED", retry_after=2)
    soon = journal.call(get(), 1.5, code=8, reason="RATE_LIMITED", retry_after=2)
    journal.call(get(), 3)  # 3 s after the first failure, but 1.5 s after the second

    assert journal.flagged(interval=timedelta(0)) == {"RETRIED_TOO_SOON": [soon.sequence, 3]}
    assert journal.notes("RETRIED_TOO_SOON")[0] == (
        f"GetVehicle(vehicle_id={CAR}) 1.5 s after call 1 failed with RATE_LIMITED, which asked to wait 2 s"
    )


def test_retries_after_the_delay_other_calls_and_failures_without_delay_are_fine() -> None:
    journal = Journal()
    journal.call(get(), 0, code=UNAVAILABLE, reason="MAINTENANCE", retry_after=2)
    journal.call(get(OTHER_CAR), 0.5)  # another vehicle
    journal.call(v2.GetFleetRequest(fleet_id="hamburg"), 0.5)  # another RPC
    journal.call(get(), 2)  # waited the delay
    journal.call(get("not-a-car"), 10, code=5, reason="VEHICLE_NOT_FOUND")
    journal.call(get("not-a-car"), 10)  # no RetryInfo, no delay to respect

    assert journal.flagged(interval=timedelta(0)) == {}


# Commands


def honk(key: str = "") -> v2.HonkHornRequest:
    return v2.HonkHornRequest(vehicle_id=CAR, idempotency_key=key)


def test_retrying_a_non_idempotent_command_of_unknown_outcome_without_the_same_key_is_unsafe() -> None:
    journal = Journal()
    journal.call(honk(), 0, code=DEADLINE_EXCEEDED, reason="POOR_CONNECTION")
    journal.call(honk(), 30, code=UNAVAILABLE, reason="CONNECTION_LOST", retry_after=1)  # no key
    journal.call(honk("k1"), 60, code=1)  # the first attempt had no key
    journal.call(honk("k2"), 90)  # another key
    journal.call(v1.FlashLightsRequest(vehicle_id=CAR), 120, code=DEADLINE_EXCEEDED)
    journal.call(v2.FlashLightsRequest(vehicle_id=CAR), 150, finished=False)  # other version, same RPC

    assert journal.flagged() == {"UNSAFE_COMMAND_RETRY": [2, 3, 4, 6]}
    assert journal.notes("UNSAFE_COMMAND_RETRY") == [
        f"HonkHorn(vehicle_id={CAR}) retried without an idempotency_key after call 1 ended DEADLINE_EXCEEDED"
        ": the vehicle may have executed it twice",
        f"HonkHorn(vehicle_id={CAR}) retried with an idempotency_key the first attempt did not have after "
        "call 2 ended UNAVAILABLE: the vehicle may have executed it twice",
        f"HonkHorn(vehicle_id={CAR}) retried with another idempotency_key than the first attempt after "
        "call 3 ended CANCELLED: the vehicle may have executed it twice",
        f"FlashLights(vehicle_id={CAR}) retried without an idempotency_key after call 5 ended "
        "DEADLINE_EXCEEDED: the vehicle may have executed it twice",
    ]


def test_same_key_retries_known_outcomes_idempotent_and_other_commands_are_safe() -> None:
    journal = Journal()
    journal.call(honk("k1"), 0, code=DEADLINE_EXCEEDED, reason="POOR_CONNECTION")
    journal.call(honk("k1"), 1)  # the same key: executed at most once
    journal.call(honk(), 10)  # a new honk after a success
    journal.call(honk(), 20, finished=False)  # still running: its outcome is not known yet
    journal.call(honk(), 30)
    journal.call(honk(), 40, code=FAILED_PRECONDITION, reason="VEHICLE_OFFLINE")  # certainly not executed
    journal.call(honk(), 50)
    journal.call(v2.LockVehicleRequest(vehicle_id=CAR), 60, code=DEADLINE_EXCEEDED)
    journal.call(v2.LockVehicleRequest(vehicle_id=CAR), 61)  # locking twice is harmless
    journal.call(honk(), 70, code=DEADLINE_EXCEEDED)
    journal.call(v2.FlashLightsRequest(vehicle_id=CAR), 71)  # not a retry of the honk
    journal.call(v2.HonkHornRequest(vehicle_id=OTHER_CAR), 72)  # nor is a honk of another vehicle

    assert journal.flagged() == {}


def test_commands_refused_as_asleep_are_reported_saying_whether_the_client_woke_the_vehicle() -> None:
    journal = Journal()
    journal.call(v2.LockVehicleRequest(vehicle_id=CAR), 0, code=FAILED_PRECONDITION, reason="VEHICLE_ASLEEP")
    journal.call(v2.WakeUpVehicleRequest(vehicle_id=CAR), 10)
    journal.call(honk(), 12, code=FAILED_PRECONDITION, reason="VEHICLE_ASLEEP")

    assert journal.flagged() == {"COMMAND_TO_SLEEPING_VEHICLE": [1, 3]}
    assert journal.notes("COMMAND_TO_SLEEPING_VEHICLE") == [
        f"LockVehicle(vehicle_id={CAR}) sent to an asleep vehicle that the client never woke up",
        f"HonkHorn(vehicle_id={CAR}) sent 2 s after WakeUpVehicle (call 2), before the vehicle was online",
    ]


def test_commands_after_the_vehicle_is_online_are_fine() -> None:
    journal = Journal()
    journal.call(v2.WakeUpVehicleRequest(vehicle_id=CAR), 0)
    journal.call(get(), 30)
    journal.call(v2.UnlockVehicleRequest(vehicle_id=CAR), 31)
    journal.call(get(OTHER_CAR), 40)
    journal.call(
        v2.LockVehicleRequest(vehicle_id=OTHER_CAR), 41, code=FAILED_PRECONDITION, reason="VEHICLE_OFFLINE"
    )

    assert journal.flagged() == {}


# Streams


def test_a_stream_reopened_without_last_message_id_after_events_were_delivered_is_reported() -> None:
    journal = Journal()
    journal.call(stream(), 0, messages=(position("1-0"), event("2-0"), event("3-0")))
    journal.call(stream(), 60, finished=False)

    assert journal.flagged() == {"STREAM_REOPENED_WITHOUT_RESUME": [2]}
    assert journal.notes("STREAM_REOPENED_WITHOUT_RESUME") == [
        f"StreamVehicleEvents(event_id={EVENTS}) opened without last_message_id after call 1 received "
        "events up to message_id 3-0: the events in between are lost"
    ]


def test_resumed_streams_streams_without_events_and_other_streams_are_fine() -> None:
    journal = Journal()
    journal.call(stream(), 0, messages=(position("1-0"),))  # no event yet
    journal.call(stream(), 10, messages=(position("1-0"), event("2-0")), finished=False)
    journal.call(stream("2-0"), 20, messages=(event("3-0"),))
    journal.call(stream("3-0"), 30)
    journal.call(stream(event_id="fleets/hanover/vehicle-events"), 40)

    assert journal.flagged() == {}


# Deprecated versions


def test_every_call_of_a_deprecated_version_is_reported_and_long_lists_are_cut() -> None:
    journal = Journal()
    for n in range(MAX_CALLS + 5):
        journal.call(v1beta4.GetFleetRequest(fleet_id="hamburg"), n * 10)
    journal.call(v1.GetFleetRequest(fleet_id="hamburg"), 500)
    journal.call(v2.GetFleetRequest(fleet_id="hamburg"), 600)

    assert journal.flagged() == {"DEPRECATED_VERSION_USED": list(range(1, MAX_CALLS + 1))}
    notes = journal.notes("DEPRECATED_VERSION_USED")
    assert notes[0] == "v1beta4 is deprecated; move to moia.fleet.state.v2"
    assert notes[-1] == "v1beta4 is deprecated; move to moia.fleet.state.v2 (and 5 more calls like it)"


# The whole report


def careless(journal: Journal) -> None:
    """Breaks every practice once."""
    journal.issue_token(0, lifetime=1800)
    journal.issue_token(1, lifetime=60)
    journal.call(get(), 2)
    journal.call(get(), 3)
    journal.call(v2.GetFleetRequest(fleet_id="hamburg"), 4, code=8, reason="RATE_LIMITED", retry_after=10)
    journal.call(v2.GetFleetRequest(fleet_id="hamburg"), 5)
    journal.call(get(OTHER_CAR), 70, code=UNAUTHENTICATED, reason="TOKEN_EXPIRED")
    journal.call(honk(), 80, code=DEADLINE_EXCEEDED, reason="POOR_CONNECTION")
    journal.call(honk(), 90)
    journal.call(
        v2.LockVehicleRequest(vehicle_id=CAR), 100, code=FAILED_PRECONDITION, reason="VEHICLE_ASLEEP"
    )
    journal.call(stream(), 110, messages=(position(), event("2-0")))
    journal.call(stream(), 120)
    journal.call(v1beta4.ListFleetsRequest(), 130)


def careful(journal: Journal) -> None:
    """Does the same things the way the seeds ask."""
    journal.issue_token(0, lifetime=1800)
    journal.issue_token(1750, lifetime=1800)
    journal.call(get(), 1751)
    journal.call(get(), 1760)
    journal.call(v2.GetFleetRequest(fleet_id="hamburg"), 1761, code=8, reason="RATE_LIMITED", retry_after=10)
    journal.call(v2.GetFleetRequest(fleet_id="hamburg"), 1771)
    journal.call(honk("k"), 1780, code=DEADLINE_EXCEEDED, reason="POOR_CONNECTION")
    journal.call(honk("k"), 1790)
    journal.call(v2.WakeUpVehicleRequest(vehicle_id=CAR), 1800)
    journal.call(get(), 1830)
    journal.call(v2.LockVehicleRequest(vehicle_id=CAR), 1831)
    journal.call(stream(), 1840, messages=(position(), event("2-0")))
    journal.call(stream("2-0"), 1850)
    journal.call(v2.ListFleetsRequest(), 1860)


def test_the_report_names_every_practice_a_careless_client_broke_and_nothing_of_a_careful_one() -> None:
    journal = Journal()
    careless(Journal("zoe", journal.entries))
    careful(Journal("bob", journal.entries))
    careless(Journal("carl", journal.entries))

    reports = journal.report()

    assert [r.client for r in reports] == ["carl", "zoe"]
    assert [f.practice for f in reports[0].findings] == [
        "POLLING_TOO_OFTEN",
        "TOKEN_RENEWED_TOO_EARLY",
        "EXPIRED_TOKEN_USED",
        "RETRIED_TOO_SOON",
        "UNSAFE_COMMAND_RETRY",
        "COMMAND_TO_SLEEPING_VEHICLE",
        "STREAM_REOPENED_WITHOUT_RESUME",
        "DEPRECATED_VERSION_USED",
    ]
    assert all(call.entry.client == "carl" for f in reports[0].findings for call in f.calls)
    assert all(f.advice for f in reports[0].findings)
    polling = reports[0].findings[0]
    assert "at most every 5 s" in polling.advice
    assert [c.entry.method for c in polling.calls] == ["/moia.fleet.state.v2.FleetStateService/GetVehicle"]


def test_an_empty_journal_gives_an_empty_report() -> None:
    assert client_reports([], INTERVAL, SUCCESSORS) == []
