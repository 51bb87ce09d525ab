"""The admin commands of the CLI (``reset``, ``load``, ``publish``, ``fault``, ``journal``, ``clock``) as
a user runs them against a real ``fleet-emulator serve`` process.

The module starts one emulator of its own (the clock these tests set is shared by all namespaces, so they
do not use the session's), runs every command as a subprocess, and checks its effect through gRPC. Each test
works in a namespace of its own, given with ``--namespace``, except where the default namespace or the
environment variables are the point; failures must reach stderr readably, with exit code 1 (2 for usage).
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from tests.e2e.cli import Cli, fleet_emulator
from tests.e2e.harness import free_port
from tests.rich_errors import M, details_of
from tests.steering import HAMBURG_EVENTS, SEED_VEHICLE

pytestmark = pytest.mark.e2e

SMALL_SCENARIO = """\
name: small
seed: 7
fleets:
  - id: testville
    city: Testville
    area: {latitude: 50.0, longitude: 8.0, radius_km: 2}
    generate: {count: 3}
"""
GET_SEED_VEHICLE = v2.GetVehicleRequest(vehicle_id=SEED_VEHICLE)
UNKNOWN_VEHICLE = "00000000-0000-4000-8000-000000000000"
OFFLINE = '{"connectivityChanged": {"current": "CONNECTIVITY_STATE_OFFLINE"}}'


def failed_call(error: grpc.RpcError) -> grpc.Call:
    """A failed call of the synchronous stack, with its code and trailers."""
    assert isinstance(error, grpc.Call)
    return error


def details(error: grpc.RpcError, kind: type[M]) -> list[M]:
    """The details of one type in the google.rpc.Status of a failed call."""
    return details_of(rpc_status.from_call(failed_call(error)), kind)


def test_clock_set_advance_show_and_back_to_real(cli: Cli) -> None:
    try:
        assert cli.ok("clock", "set", "2030-01-01T02:00:00+02:00") == "2030-01-01T00:00:00Z (virtual)\n"
        clock = cli.admin.GetClock(admin_pb2.GetClockRequest())
        assert (clock.now.ToJsonString(), clock.virtual) == ("2030-01-01T00:00:00Z", True)

        assert cli.ok("clock", "advance", "90s") == "2030-01-01T00:01:30Z (virtual)\n"
        assert cli.ok("clock") == "2030-01-01T00:01:30Z (virtual)\n"
    finally:
        back = cli.ok("clock", "real")
    assert back.endswith(" (real)\n")
    assert not cli.admin.GetClock(admin_pb2.GetClockRequest()).virtual


def test_a_fault_fails_the_next_call_once_with_its_details(cli: Cli) -> None:
    added = cli.ok(
        "fault", "add", "--method", "GetVehicle", "--fail", "UNAVAILABLE", "--times", "1",
        "--reason", "MAINTENANCE", "--retry-after", "2s",
    )  # fmt: skip

    rule = json.loads(added)
    assert (rule["method"], rule["times"], rule["fail"]["code"]) == ("GetVehicle", 1, 14)
    with pytest.raises(grpc.RpcError) as failed:
        cli.api.GetVehicle(GET_SEED_VEHICLE, metadata=cli.metadata)
    assert failed_call(failed.value).code() is grpc.StatusCode.UNAVAILABLE
    assert [info.reason for info in details(failed.value, error_details_pb2.ErrorInfo)] == ["MAINTENANCE"]
    assert [r.retry_delay.seconds for r in details(failed.value, error_details_pb2.RetryInfo)] == [2]
    assert cli.api.GetVehicle(GET_SEED_VEHICLE, metadata=cli.metadata).vehicle.id == SEED_VEHICLE
    assert cli.faults() == []  # spent


def test_faults_are_listed_deleted_and_cleared(cli: Cli) -> None:
    latency = json.loads(cli.ok("fault", "add", "--method", "ListFleets", "--latency", "0.5s"))
    cli.ok("fault", "add", "--method", "StreamVehicleEvents", "--stall-after", "0")

    listed = json.loads(cli.ok("fault", "list"))
    assert [rule["id"] for rule in listed] == [rule.id for rule in cli.faults()]
    assert listed[0] == latency
    assert listed[1]["stallStream"] == {}

    assert cli.ok("fault", "delete", latency["id"]) == f"deleted fault {latency['id']}\n"
    assert [rule.stall_stream.after_messages for rule in cli.faults()] == [0]
    assert cli.ok("fault", "clear") == "deleted 1 fault rule\n"
    assert cli.faults() == []

    missing = cli.run("fault", "delete", latency["id"])
    assert missing.returncode == 1
    assert "NOT_FOUND" in missing.stderr
    assert "ErrorInfo: reason=FAULT_NOT_FOUND" in missing.stderr


@pytest.mark.parametrize(
    ("args", "exit_code", "problem"),
    [
        ([], 1, "BadRequest: field=fault.action description="),
        (["--fail", "UNAVAILABLE", "--probability", "0.5"], 1, "BadRequest: field=fault.seed description="),
        (["--break-after", "1"], 1, "BadRequest: field=fault.break_stream.code description="),
        (["--fail", "UNAVAILABLE", "--latency", "1s"], 2, "not --fail and --latency"),
        (["--fail", "NOPE"], 2, "'NOPE' is not a gRPC status code"),
        (["--latency", "1s", "--code", "ABORTED"], 2, "--code goes with --break-after"),
        (["--latency", "soon"], 2, "'soon' is not a duration"),
    ],
    ids=[
        "no-action",
        "no-seed",
        "no-break-code",
        "two-actions",
        "unknown-code",
        "stray-code",
        "bad-duration",
    ],
)
def test_a_bad_fault_is_refused_readably(cli: Cli, args: list[str], exit_code: int, problem: str) -> None:
    """The emulator's violations (exit code 1) or, for what a Fault cannot express, a usage error (2)."""
    result = cli.run("fault", "add", "--method", "GetVehicle", *args)

    assert result.returncode == exit_code, result.stdout
    assert problem in result.stderr
    assert result.stderr.startswith("Error: INVALID_ARGUMENT: ") == (exit_code == 1)
    assert cli.faults() == []


def test_journal_lists_calls_with_their_flow_id_and_is_cleared(cli: Cli) -> None:
    cli.api.GetVehicle(GET_SEED_VEHICLE, metadata=(*cli.metadata, ("x-flow-id", "cli-journal-flow")))
    with pytest.raises(grpc.RpcError):
        cli.api.GetVehicle(v2.GetVehicleRequest(vehicle_id=UNKNOWN_VEHICLE), metadata=cli.metadata)

    lines = cli.ok("journal", "--flow-id", "cli-journal-flow").splitlines()
    assert len(lines) == 1
    sequence, _time, method, code, flow, duration = lines[0].split("  ")
    assert [sequence, code, flow] == ["1", "OK", "flow=cli-journal-flow"]
    assert method == "moia.fleet.state.v2.FleetStateService/GetVehicle"
    assert duration.endswith("ms")

    [failed] = [json.loads(line) for line in cli.ok("journal", "--code", "NOT_FOUND", "--json").splitlines()]
    assert (failed["sequence"], failed["code"]) == ("2", 5)  # int64 is a string in proto3 JSON
    assert failed["request"] == {"vehicle_id": UNKNOWN_VEHICLE}
    assert cli.ok("journal", "--after", "1").splitlines()[0].startswith("2  ")

    assert cli.run("journal", "--method", "GetVehicle", "clear").returncode == 2  # filters do not apply
    assert cli.ok("journal", "clear") == "deleted 2 journal entries\n"
    request = admin_pb2.ListJournalEntriesRequest()
    assert not cli.admin.ListJournalEntries(request, metadata=cli.metadata).entries


def test_journal_shows_how_many_messages_a_broken_stream_sent(cli: Cli) -> None:
    cli.ok("fault", "add", "--method", "StreamVehicleEvents", "--break-after", "1", "--code", "UNAVAILABLE")

    request = v2.StreamRequest(event_id=HAMBURG_EVENTS)
    with pytest.raises(grpc.RpcError) as broken:
        list(cli.api.StreamVehicleEvents(request, metadata=cli.metadata, timeout=10))
    assert failed_call(broken.value).code() is grpc.StatusCode.UNAVAILABLE

    [line] = cli.ok("journal", "--method", "StreamVehicleEvents").splitlines()
    assert "  UNAVAILABLE  " in line
    assert line.endswith("  1 message")


@pytest.mark.parametrize("source", ["--json", "--file"])
def test_publish_puts_the_event_on_the_fleet_stream(cli: Cli, tmp_path: Path, source: str) -> None:
    start = v2.PollRequest(event_id=HAMBURG_EVENTS)
    position = cli.api.PollVehicleEvents(start, metadata=cli.metadata).message_id
    document = OFFLINE
    if source == "--file":
        (tmp_path / "event.json").write_text(OFFLINE)
        document = str(tmp_path / "event.json")

    published = json.loads(cli.ok("publish", "--vehicle", SEED_VEHICLE, source, document))

    event = published["event"]
    assert (event["vehicleId"], event["fleetId"]) == (SEED_VEHICLE, "hamburg")
    assert event["connectivityChanged"]["current"] == "CONNECTIVITY_STATE_OFFLINE"
    request = v2.PollRequest(event_id=HAMBURG_EVENTS, last_message_id=position)
    polled = cli.api.PollVehicleEvents(request, metadata=cli.metadata)
    assert [e.id for e in polled.events] == [event["id"]]
    assert polled.message_id == published["messageId"]


def test_publish_refuses_json_that_is_no_event(cli: Cli) -> None:
    result = cli.run("publish", "--vehicle", SEED_VEHICLE, "--json", '{"lockChanged": {"previous": 1}}')

    assert result.returncode == 2
    assert 'no field named "previous"' in result.stderr


def test_load_replaces_the_fleets_of_the_namespace_only(cli: Cli, tmp_path: Path) -> None:
    scenario = tmp_path / "small.yaml"
    scenario.write_text(SMALL_SCENARIO)

    assert cli.ok("load", str(scenario)) == f"loaded scenario 'small' from {scenario}: 1 fleet, 3 vehicles\n"
    assert cli.fleet_ids() == ["testville"]
    assert cli.ok("reset") == "reset to 1 fleet, 3 vehicles\n"  # resets return to the loaded scenario
    assert cli.elsewhere(f"{cli.namespace}-other").fleet_ids() == ["hamburg", "hanover"]


def test_load_names_file_line_and_field_of_a_bad_scenario(cli: Cli, tmp_path: Path) -> None:
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(SMALL_SCENARIO.replace("id: testville", "id: Test Ville"))

    result = cli.run("load", str(scenario))

    assert result.returncode == 1
    assert "ErrorInfo: reason=SCENARIO_INVALID" in result.stderr
    assert f'BadRequest: field=yaml description="{scenario}:4: fleets[0].id: ' in result.stderr
    assert cli.fleet_ids() == ["hamburg", "hanover"]


def test_reset_restores_the_demo(cli: Cli) -> None:
    cli.admin.DeleteFleet(admin_pb2.DeleteFleetRequest(fleet_id="hanover"), metadata=cli.metadata)
    assert cli.fleet_ids() == ["hamburg"]

    assert cli.ok("reset") == "reset to 2 fleets, 35 vehicles\n"
    assert cli.fleet_ids() == ["hamburg", "hanover"]


def test_a_namespace_is_isolated_from_the_default_one(cli: Cli) -> None:
    cli.ok("fault", "add", "--method", "ListFleets", "--fail", "INTERNAL")

    default = cli.elsewhere("")
    assert default.faults() == []
    assert default.fleet_ids() == ["hamburg", "hanover"]
    with pytest.raises(grpc.RpcError) as failed:
        cli.fleet_ids()
    assert failed_call(failed.value).code() is grpc.StatusCode.INTERNAL
    # The connection options also work on the group, and from the environment.
    listed = fleet_emulator("fault", "--address", cli.address, "--namespace", cli.namespace, "list")
    assert len(json.loads(listed.stdout)) == 1
    env = {"FLEET_EMULATOR_ADDRESS": cli.address, "FLEET_EMULATOR_NAMESPACE": cli.namespace}
    assert fleet_emulator("fault", "clear", **env).stdout == "deleted 1 fault rule\n"
    assert fleet_emulator("fault", "list", FLEET_EMULATOR_ADDRESS=cli.address).stdout == "[]\n"


def test_an_unreachable_emulator_is_a_clear_error() -> None:
    address = f"127.0.0.1:{free_port()}"

    result = fleet_emulator("clock", "--address", address, "--timeout", "5")

    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: cannot reach the emulator at {address}: ")
    assert "Traceback" not in result.stderr
