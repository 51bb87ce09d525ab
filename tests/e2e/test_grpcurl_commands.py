"""Vehicle commands through the real grpcurl binary against ``fleet-emulator serve``: put a vehicle to sleep
with the admin service, see a honk refused, wake it up, move the clock with ``fleet-emulator clock``, then
honk, retry with the idempotency key, and find the command's event with the call's flow id; and a
poor-connection fault added with ``fleet-emulator fault add --poor-connection`` that loses a honk's answer.

The module starts an emulator of its own, as the clock it moves is shared by every namespace.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cli import fleet_emulator
from tests.e2e.harness import call, free_port, get_field, grpcurl, parse_error, serve_command, serving

pytestmark = pytest.mark.e2e

V2 = "moia.fleet.state.v2.FleetStateService"
ADMIN = "emulator.admin.v1.AdminService"
VEHICLE = "94d36e21-ca69-4a5b-b2b7-8068122e7362"
STREAM = "fleets/hamburg/vehicle-events"


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log: Path = tmp_path_factory.mktemp("commands") / "serve.log"
    with serving(serve_command("--host", "127.0.0.1", "--port", str(port)), port, log) as emulator:
        yield emulator.address


def clock(address: str, *args: str) -> None:
    result = fleet_emulator("clock", *args, "--address", address)
    assert result.returncode == 0, result.stderr


def honk(address: str, *flags: str, **request: Any) -> dict[str, Any]:
    return call(address, f"{V2}/HonkHorn", {"vehicle_id": VEHICLE, **request}, *flags)


def test_wake_up_an_asleep_vehicle_then_honk(address: str) -> None:
    clock(address, "set", "2030-01-01T00:00:00Z")
    asleep = {"vehicle": {"id": VEHICLE, "connectivity": "CONNECTIVITY_STATE_ASLEEP"}}
    call(address, f"{ADMIN}/UpdateVehicle", {**asleep, "update_mask": {"paths": ["connectivity"]}})

    refused = grpcurl("-plaintext", "-d", f'{{"vehicle_id": "{VEHICLE}"}}', address, f"{V2}/HonkHorn")
    error = parse_error(refused.stderr)
    assert error.code == "FailedPrecondition"
    assert error.detail("google.rpc.ErrorInfo")["reason"] == "VEHICLE_ASLEEP"
    assert error.detail("google.rpc.PreconditionFailure")["violations"][0]["type"] == "VEHICLE_STATE"

    woken = call(address, f"{V2}/WakeUpVehicle", {"vehicle_id": VEHICLE}, "-H", "x-flow-id: e2e-wake")
    assert woken["vehicle"]["connectivity"] == "CONNECTIVITY_STATE_ASLEEP"
    clock(address, "advance", "60s")  # the longest default delay
    online = call(address, f"{V2}/GetVehicle", {"vehicle_id": VEHICLE})["vehicle"]
    assert online["connectivity"] == "CONNECTIVITY_STATE_ONLINE"

    position = get_field(call(address, f"{V2}/PollVehicleEvents", {"event_id": STREAM}), "message_id")
    first = honk(address, "-H", "x-flow-id: e2e-honk", idempotency_key="e2e-key")["result"]
    assert (first["command"], get_field(first, "execution_count")) == ("VEHICLE_COMMAND_HONK_HORN", "1")
    assert honk(address, idempotency_key="e2e-key")["result"] == first

    polled = call(address, f"{V2}/PollVehicleEvents", {"event_id": STREAM, "last_message_id": position})
    [event] = polled["events"]
    assert get_field(event, "command_executed")["result"] == first
    assert get_field(event, "flow_id") == "e2e-honk"


def test_a_poor_connection_from_the_cli_loses_the_answer_of_a_honk_that_ran(address: str) -> None:
    before = int(get_field(honk(address)["result"], "execution_count"))
    rule = ("--method", "HonkHorn", "--times", "1", "--poor-connection", "executed", "--code", "UNAVAILABLE")
    added = fleet_emulator("fault", "add", *rule, "--address", address)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["poorConnection"] == {"executed": True, "code": 14}

    lost = grpcurl("-plaintext", "-d", f'{{"vehicle_id": "{VEHICLE}"}}', address, f"{V2}/HonkHorn")
    error = parse_error(lost.stderr)
    assert error.code == "Unavailable"
    assert error.detail("google.rpc.ErrorInfo")["reason"] == "CONNECTION_LOST"
    assert get_field(error.detail("google.rpc.RetryInfo"), "retry_delay") == "1s"
    after = int(get_field(honk(address)["result"], "execution_count"))
    assert after == before + 2  # the honk whose answer was lost ran

    unknown = fleet_emulator("fault", "add", "--method", "HonkHorn", "--poor-connection", "maybe")
    assert unknown.returncode == 2
