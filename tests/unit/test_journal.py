"""The journal's bounds: entries and bytes per namespace, bytes for all namespaces together (the oldest of
all dropped first), requests cut when large, and headers that look like credentials redacted."""

from __future__ import annotations

from datetime import UTC, datetime

from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as pb
from fleet_emulator.api.admin_convert import journal_message
from fleet_emulator.api.shrink import MAX_ITEMS, MAX_JOURNALED_BYTES, MAX_TEXT, journaled, kept
from fleet_emulator.domain.journal import (
    ENTRY_OVERHEAD_BYTES,
    KEPT_OVERHEAD_BYTES,
    REDACTED,
    Journal,
    JournalEntry,
    JournalPool,
    Kept,
    redact,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def entry(request_size: int = 0, flow_id: str = "f") -> JournalEntry:
    """A call whose request takes ``request_size`` bytes kept, the overhead of keeping them included (at
    least ``KEPT_OVERHEAD_BYTES``), or none."""
    request = Kept(b"x" * max(0, request_size - KEPT_OVERHEAD_BYTES), bytes) if request_size else None
    return JournalEntry(
        NOW, "/moia.fleet.state.v2.FleetStateService/GetVehicle", "v2", {}, request, flow_id, ""
    )


def flows(journal: Journal) -> list[str]:
    return [e.flow_id for e in journal]


def test_a_namespace_keeps_its_newest_entries_within_its_count_and_bytes() -> None:
    by_count = Journal(capacity=3)
    for n in range(5):
        by_count.add(entry(flow_id=str(n)))
    assert flows(by_count) == ["2", "3", "4"]
    by_bytes = Journal(budget_bytes=3 * (ENTRY_OVERHEAD_BYTES + 1000))
    for n in range(5):
        by_bytes.add(entry(1000, str(n)))
    assert flows(by_bytes) == ["2", "3", "4"]
    assert by_bytes.used == 3 * (ENTRY_OVERHEAD_BYTES + 1000)
    assert [e.sequence for e in by_bytes] == [3, 4, 5], "sequences go on counting"


def test_an_entry_larger_than_the_budget_is_kept_alone() -> None:
    journal = Journal(budget_bytes=100)
    journal.add(entry(10_000, "big"))
    assert flows(journal) == ["big"]


def test_all_namespaces_share_one_budget_and_the_oldest_of_all_goes_first() -> None:
    size = ENTRY_OVERHEAD_BYTES + 1000
    pool = JournalPool(total_bytes=4 * size)
    first, second = pool.journal(), pool.journal()
    first.add(entry(1000, "a1"))
    second.add(entry(1000, "b1"))
    first.add(entry(1000, "a2"))
    second.add(entry(1000, "b2"))
    first.add(entry(1000, "a3"))  # one too many: b1 is not the oldest, a1 is
    assert (flows(first), flows(second)) == (["a2", "a3"], ["b1", "b2"])
    second.add(entry(1000, "b3"))  # now b1 is the oldest of all
    assert (flows(first), flows(second)) == (["a2", "a3"], ["b2", "b3"])
    assert pool.used == 4 * size
    pool.forget(second)
    assert pool.used == 2 * size, "what the first journal holds"


def test_a_stream_entry_grows_with_its_messages_and_counts_them_all() -> None:
    journal = Journal(budget_bytes=ENTRY_OVERHEAD_BYTES + 5000)
    stream = journal.add(entry(flow_id="stream"))
    message = Kept(b"m" * 40, bytes)
    for _ in range(150):
        stream.sent(message if stream.keeps_messages else None)
    assert (len(stream.messages), stream.message_count) == (100, 150)
    assert journal.used == ENTRY_OVERHEAD_BYTES + 100 * message.size
    journal.add(entry(ENTRY_OVERHEAD_BYTES * 2, "next"))
    assert flows(journal) == ["next"], "the stream's entry was the oldest"
    assert stream.messages == [] and not stream.keeps_messages, "a dropped entry keeps no messages"
    stream.sent(None)
    assert stream.message_count == 151


def test_headers_that_look_like_credentials_are_redacted() -> None:
    headers = {
        "authorization": "Bearer x", "x-api-key": "k", "Cookie": "c", "x-auth-user": "u",
        "x-session-token": "t", "client-secret": "s", "x-flow-id": "flow", "user-agent": "grpc",
    }  # fmt: skip
    kept = redact(headers)
    assert {k for k, v in kept.items() if v == REDACTED} == set(headers) - {"x-flow-id", "user-agent"}
    assert (kept["x-flow-id"], kept["user-agent"]) == ("flow", "grpc")


def test_a_small_request_is_journaled_as_it_came() -> None:
    request = pb.GetVehicleRequest(vehicle_id="v")
    assert journaled(request) == (request, request.ByteSize(), False)


def test_a_large_request_is_journaled_cut_and_says_so() -> None:
    request = pb.UpdateVehicleRequest(vehicle=pb.Vehicle(id="v", label="x" * 100_000))
    request.update_mask.paths.extend(f"p{n}" for n in range(500))
    cut, size, truncated = journaled(request)
    assert (size, truncated) == (request.ByteSize(), True)
    assert isinstance(cut, pb.UpdateVehicleRequest)
    assert cut.vehicle.label == "x" * (MAX_TEXT - 1) + "…"
    assert list(cut.update_mask.paths) == [f"p{n}" for n in range(MAX_ITEMS)]
    assert cut.ByteSize() <= MAX_JOURNALED_BYTES
    kept_request = kept(cut)
    message = journal_message(entry_with(kept_request, size, truncated))
    assert (message.request_truncated, message.request_size_bytes) == (True, size)
    assert message.request.fields["vehicle"].struct_value.fields["id"].string_value == "v"


def test_a_request_too_large_even_when_cut_is_kept_empty() -> None:
    request = pb.UpdateVehicleRequest()
    request.update_mask.paths.extend(["y" * 2000] * 200)  # cut: 100 paths of 1,024 characters: too large
    cut, _, truncated = journaled(request)
    assert truncated and cut == pb.UpdateVehicleRequest()


def entry_with(request: Kept, size: int, truncated: bool) -> JournalEntry:
    made = entry()
    made.request, made.request_size, made.request_truncated = request, size, truncated
    return made
