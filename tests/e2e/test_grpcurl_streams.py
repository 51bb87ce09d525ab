"""Streams through the real grpcurl binary: change a vehicle with the admin service, then replay its
events from a message id, poll them, and see a malformed id rejected with its BadRequest."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.harness import call, get_field, grpcurl, parse_error

pytestmark = pytest.mark.e2e

V2 = "moia.fleet.state.v2.FleetStateService"
ADMIN = "emulator.admin.v1.AdminService"
STREAM = "fleets/hanover/vehicle-events"


def messages(stdout: str) -> list[dict[str, Any]]:
    """The JSON messages grpcurl printed one after the other for a streaming call."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while at < len(stdout.rstrip()):
        message, at = decoder.raw_decode(stdout, at)
        found.append(message)
        while at < len(stdout) and stdout[at].isspace():
            at += 1
    return found


def test_replay_and_poll_after_an_admin_change(address: str) -> None:
    vehicle = call(address, f"{V2}/ListVehicles", {"fleet_id": "hanover", "page_size": 1})["vehicles"][0]
    position = call(address, f"{V2}/PollVehicleEvents", {"event_id": STREAM})["message_id"]
    update = {
        "vehicle": {"id": vehicle["id"], "lock_state": "LOCK_STATE_UNLOCKED"},
        "update_mask": {"paths": ["lock_state"]},
    }
    if vehicle.get("lock_state") == "LOCK_STATE_UNLOCKED":
        update["vehicle"]["lock_state"] = "LOCK_STATE_LOCKED"
    call(address, f"{ADMIN}/UpdateVehicle", update, "-H", "x-flow-id: e2e-lock-1")

    replay = grpcurl(
        "-plaintext",
        "-max-time",
        "2",
        "-d",
        json.dumps({"event_id": STREAM, "last_message_id": position}),
        address,
        f"{V2}/StreamVehicleEvents",
    )
    replayed = messages(replay.stdout)
    assert "DeadlineExceeded" in replay.stderr, "the stream stays open for live events until -max-time"
    assert len(replayed) == 1
    event = replayed[0]["event"]
    assert event["vehicle_id"] == vehicle["id"]
    assert get_field(event, "flow_id") == "e2e-lock-1"
    assert get_field(event, "lock_changed")["lock_state"] == update["vehicle"]["lock_state"]

    polled = call(address, f"{V2}/PollVehicleEvents", {"event_id": STREAM, "last_message_id": position})
    assert polled["events"] == [event]
    assert polled["message_id"] == get_field(replayed[0], "message_id")


def test_a_malformed_message_id_shows_its_bad_request(address: str) -> None:
    result = grpcurl(
        "-plaintext",
        "-d",
        json.dumps({"event_id": STREAM, "last_message_id": "yesterday"}),
        address,
        f"{V2}/StreamVehicleEvents",
    )
    error = parse_error(result.stderr)
    assert error.code == "InvalidArgument"
    bad_request = error.detail("google.rpc.BadRequest")
    violations = get_field(bad_request, "field_violations")
    assert [v["field"] for v in violations] == ["last_message_id"]
