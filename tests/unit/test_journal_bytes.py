"""A shared journal's stored form (``backends/journal_bytes.py``): compact, lossless, and the full form that
earlier versions wrote still reads."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from fleet_emulator.backends.journal_bytes import dump, load
from fleet_emulator.domain.codec import encode
from fleet_emulator.domain.journal import JournalEntry, Kept

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
REQUEST = v2.GetVehicleRequest(vehicle_id="94d36e21-ca69-4a5b-b2b7-8068122e7362")


def entry(**changes: object) -> JournalEntry:
    plain = JournalEntry(
        start_time=T0,
        method="/moia.fleet.state.v2.FleetStateService/GetVehicle",
        version="v2",
        metadata={"user-agent": "grpc-python", "authorization": "<redacted>"},
        request=Kept(REQUEST.SerializeToString(), v2.GetVehicleRequest.FromString),
        flow_id="flow-1",
        peer="ipv4:127.0.0.1:5555",
        finished=True,
        duration=timedelta(microseconds=420),
    )
    return dataclasses.replace(plain, **changes)  # type: ignore[arg-type]


def test_an_entry_stores_only_what_differs_from_the_defaults_and_reads_back_equal() -> None:
    plain = entry(sequence=7)
    stored = json.loads(dump(plain))
    assert set(stored) == {
        "start_time", "method", "version", "metadata", "flow_id", "peer", "finished", "duration", "request"
    }  # fmt: skip
    assert load(dump(plain), 7) == plain


def test_a_failed_stream_with_every_field_set_reads_back_equal() -> None:
    response = Kept(v2.StreamResponse(message_id="1-0").SerializeToString(), v2.StreamResponse.FromString)
    full = entry(
        sequence=9,
        code=5,
        status_message="vehicle x does not exist",
        messages=[response, response],
        message_count=2,
        resumed_from="1-0",
        client="sub-1",
        reason="VEHICLE_NOT_FOUND",
        retry_delay=timedelta(seconds=1),
        token_expiry=T0 + timedelta(minutes=30),
        request_size=40,
        request_truncated=True,
        status_details=b"\x08\x05",
        size=900,
    )
    back = load(dump(full), 9)
    assert back == full
    assert [m.load(m.data) for m in back.messages] == [v2.StreamResponse(message_id="1-0")] * 2


def test_the_full_form_of_earlier_versions_still_reads() -> None:
    plain = entry(sequence=3)
    earlier = {
        f.name: encode(getattr(plain, f.name))
        for f in dataclasses.fields(plain)
        if f.name not in ("journal", "sequence", "order", "request", "messages")
    }
    earlier["request"] = json.loads(dump(plain))["request"]
    earlier["messages"] = []
    assert load(json.dumps(earlier), 3) == plain
