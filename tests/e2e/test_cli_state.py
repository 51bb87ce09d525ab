"""``fleet-emulator fleet`` and ``vehicle``: fleets and vehicles created, changed and deleted from a shell."""

from __future__ import annotations

import json

import grpc
import pytest

from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from tests.e2e.cli import Cli

pytestmark = pytest.mark.e2e

VEHICLE = "0b9a5a7e-8f1e-4c59-9d53-5b3c1f2a9e01"


def test_a_fleet_is_created_changed_and_deleted(cli: Cli) -> None:
    created = json.loads(cli.ok("fleet", "create", "--json", '{"id": "kiel", "city": "Kiel"}'))
    assert (created["id"], created["city"], created["vehicleEventsId"]) == (
        "kiel",
        "Kiel",
        "fleets/kiel/vehicle-events",
    )
    changed = json.loads(cli.ok("fleet", "update", "kiel", "--json", '{"display_name": "MOIA Kiel"}'))
    assert (changed["displayName"], changed["city"]) == ("MOIA Kiel", "Kiel")
    assert cli.fleet_ids() == ["hamburg", "hanover", "kiel"]
    assert cli.ok("fleet", "delete", "kiel") == "deleted fleet kiel\n"
    assert cli.fleet_ids() == ["hamburg", "hanover"]
    again = cli.run("fleet", "delete", "kiel")
    assert again.returncode == 1
    assert "NOT_FOUND" in again.stderr
    assert "reason=FLEET_NOT_FOUND" in again.stderr


def test_a_vehicle_is_created_changed_with_events_and_deleted(cli: Cli) -> None:
    body = json.dumps({"id": VEHICLE, "fleet_id": "hanover", "label": "77"})
    created = json.loads(cli.ok("vehicle", "create", "--json", body))
    assert (created["id"], created["label"], created["connectivity"]) == (
        VEHICLE,
        "77",
        "CONNECTIVITY_STATE_ONLINE",
    )
    change = '{"battery": {"state_of_charge_percent": 12.5}, "connectivity": "CONNECTIVITY_STATE_ASLEEP"}'
    answer = json.loads(cli.ok("vehicle", "update", VEHICLE, "--json", change))
    assert answer["vehicle"]["battery"]["stateOfChargePercent"] == 12.5
    assert answer["vehicle"]["battery"].get("rangeKm", 0) == created["battery"].get("rangeKm", 0), (
        "only named fields"
    )
    kinds = sorted(next(iter(k for k in e if k.endswith("Changed"))) for e in answer["events"])
    assert kinds == ["batteryChanged", "connectivityChanged"]
    vehicle = cli.api.GetVehicle(v2.GetVehicleRequest(vehicle_id=VEHICLE), metadata=cli.metadata).vehicle
    assert vehicle.connectivity == v2.CONNECTIVITY_STATE_ASLEEP
    assert cli.ok("vehicle", "delete", VEHICLE) == f"deleted vehicle {VEHICLE}\n"
    with pytest.raises(grpc.RpcError):
        cli.api.GetVehicle(v2.GetVehicleRequest(vehicle_id=VEHICLE), metadata=cli.metadata)


def test_bad_input_is_refused_readably(cli: Cli) -> None:
    unknown_field = cli.run("vehicle", "update", VEHICLE, "--json", '{"colour": "red"}')
    assert unknown_field.returncode == 2
    assert "--json" in unknown_field.stderr
    missing = cli.run("vehicle", "create", "--json", '{"fleet_id": "atlantis"}')
    assert missing.returncode == 1
    assert "reason=FLEET_NOT_FOUND" in missing.stderr
    immutable = cli.run("fleet", "update", "hamburg", "--json", '{"id": "altona"}')
    assert immutable.returncode == 1
    assert "BadRequest: field=update_mask" in immutable.stderr
