"""``fleet-emulator report`` against a real ``fleet-emulator serve``: the text report, ``--json`` and
``--fail-on-findings`` after a few careless calls (a deprecated version, fast polling), and a namespace
whose client broke nothing.

The module has an emulator of its own, on a virtual clock that stands still, so that two calls in a row
are certainly within the poll interval; each test works in a namespace of its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest

from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2 as v1beta4
from fleet_emulator._gen.moia.fleet.state.v1beta4 import fleet_state_pb2_grpc as v1beta4_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from tests.e2e.cli import Cli
from tests.steering import SEED_VEHICLE

pytestmark = pytest.mark.e2e

GET_SEED_VEHICLE = v2.GetVehicleRequest(vehicle_id=SEED_VEHICLE)
CLIENT = "127.0.0.1"  # without a token, the client is the peer's host


@pytest.fixture
def still(cli: Cli) -> Iterator[Cli]:
    """The CLI of a new namespace, with the emulator's clock stopped."""
    cli.ok("clock", "set", "2030-01-01T08:00:00Z")
    yield cli
    cli.ok("clock", "real")


def careless_calls(cli: Cli) -> None:
    """A v1beta4 call, and the same vehicle read twice at once."""
    with grpc.insecure_channel(cli.address) as channel:
        old = v1beta4_grpc.FleetStateServiceStub(channel)
        old.GetFleet(v1beta4.GetFleetRequest(fleet_id="hamburg"), metadata=cli.metadata)
    cli.api.GetVehicle(GET_SEED_VEHICLE, metadata=(*cli.metadata, ("x-flow-id", "first-read")))
    cli.api.GetVehicle(GET_SEED_VEHICLE, metadata=(*cli.metadata, ("x-flow-id", "second-read")))


def test_report_names_each_broken_practice_with_its_calls(still: Cli) -> None:
    careless_calls(still)

    lines = still.ok("report").splitlines()

    assert lines[0] == f"{CLIENT}: 2 broken practices"
    assert lines[1] == "  POLLING_TOO_OFTEN"
    assert lines[2].startswith("    advice: Read the same data at most every 5 s")
    sequence, time, method, flow, note = lines[3].strip().split("  ")
    assert (sequence, time, method, flow) == (
        "3",
        "2030-01-01T08:00:00Z",
        "moia.fleet.state.v2.FleetStateService/GetVehicle",
        "flow=second-read",
    )
    assert note == f"GetVehicle(vehicle_id={SEED_VEHICLE}) 0 s after call 2, sooner than 5 s"
    assert lines[4] == "  DEPRECATED_VERSION_USED"
    assert lines[6].startswith(
        "    1  2030-01-01T08:00:00Z  moia.fleet.state.v1beta4.FleetStateService/GetFleet"
    )
    assert lines[6].endswith("  v1beta4 is deprecated; move to moia.fleet.state.v2")
    assert len(lines) == 7


def test_report_json_and_fail_on_findings(still: Cli) -> None:
    careless_calls(still)

    document = json.loads(still.ok("report", "--json"))
    failing = still.run("report", "--fail-on-findings")

    [client] = document["clients"]
    assert client["client"] == CLIENT
    assert [f["practice"] for f in client["findings"]] == ["POLLING_TOO_OFTEN", "DEPRECATED_VERSION_USED"]
    [polling] = client["findings"][0]["calls"]
    assert (polling["sequence"], polling["flowId"]) == ("3", "second-read")  # int64 is a string in JSON
    assert failing.returncode == 1
    assert failing.stdout.startswith(f"{CLIENT}: 2 broken practices\n")


def test_a_careful_client_gets_an_empty_report_and_passes(still: Cli) -> None:
    still.api.GetVehicle(GET_SEED_VEHICLE, metadata=still.metadata)
    still.ok("clock", "advance", "5s")
    still.api.GetVehicle(GET_SEED_VEHICLE, metadata=still.metadata)

    assert still.ok("report", "--fail-on-findings") == "no client broke a practice\n"
    assert json.loads(still.ok("report", "--json")) == {}
