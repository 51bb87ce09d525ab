"""``fleet-emulator policies`` and the serve options behind it, against a real ``fleet-emulator serve``.

The policies of a namespace are shown and changed with the CLI and their effect is read with the real
grpcurl: unknown enum values and fields in responses, and a serve started with policies of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.cli import Cli, fleet_emulator
from tests.e2e.harness import call, free_port, serve_command, serving
from tests.steering import SEED_VEHICLE

pytestmark = pytest.mark.e2e

V2 = "moia.fleet.state.v2.FleetStateService"


def get_vehicle(address: str, namespace: str) -> dict[str, object]:
    flags = ("-H", f"x-emulator-namespace: {namespace}")
    vehicle: dict[str, object] = call(address, f"{V2}/GetVehicle", {"vehicle_id": SEED_VEHICLE}, *flags)[
        "vehicle"
    ]
    return vehicle


def test_policies_show_the_defaults_as_json(cli: Cli) -> None:
    shown = json.loads(cli.ok("policies"))
    assert shown["authMode"] == "AUTH_MODE_NONE"
    assert (shown["wakeUpDelayMin"], shown["wakeUpDelayMax"], shown["pollInterval"]) == ("10s", "60s", "5s")


def test_unknown_values_switched_on_show_in_grpcurl_as_numbers(cli: Cli) -> None:
    before = get_vehicle(cli.address, cli.namespace)
    changed = json.loads(cli.ok("policies", "set", "--unknown-values", "--poll-interval", "30s"))
    assert (changed["unknownValues"], changed["pollInterval"], changed["authMode"]) == (
        True,
        "30s",
        "AUTH_MODE_NONE",
    )
    doors = get_vehicle(cli.address, cli.namespace)["doors"]
    assert isinstance(doors, list) and isinstance(before["doors"], list)
    assert doors[-1] == {"position": 99, "state": 99} and len(doors) == len(before["doors"]) + 1
    cli.ok("policies", "set", "--no-unknown-values")
    assert get_vehicle(cli.address, cli.namespace) == before


def test_rate_limits_from_a_preset_and_a_file(cli: Cli, tmp_path: Path) -> None:
    preset = json.loads(cli.ok("policies", "set", "--rate-limits", "seed-001"))
    assert {"method": "GetFleet", "requests": 1, "period": "RATE_PERIOD_SECOND", "burst": 2} in preset[
        "rateLimits"
    ]
    rules = tmp_path / "limits.yaml"
    rules.write_text("- method: GetVehicle\n  rate: 3/m\n")
    from_file = json.loads(cli.ok("policies", "set", "--rate-limits", str(rules)))
    assert from_file["rateLimits"] == [
        {"method": "GetVehicle", "requests": 3, "period": "RATE_PERIOD_MINUTE"}
    ]
    rules.write_text("- method: GetVehicle\n  rate: fast\n")
    refused = cli.run("policies", "set", "--rate-limits", str(rules))
    assert refused.returncode == 2 and "[0].rate" in refused.stderr


def test_policies_set_without_options_is_a_usage_error(cli: Cli) -> None:
    result = cli.run("policies", "set")
    assert result.returncode == 2 and "at least one policy" in result.stderr


def test_serve_starts_every_namespace_with_its_policy_options(tmp_path: Path) -> None:
    port = free_port()
    command = serve_command(
        "--host", "127.0.0.1", "--port", str(port), "--unknown-values", "--wake-up-delay-max", "20s"
    )
    with serving(command, port, tmp_path / "serve.log") as emulator:
        shown = json.loads(
            fleet_emulator("policies", "--address", emulator.address, "--namespace", "x").stdout
        )
        assert (shown["unknownValues"], shown["wakeUpDelayMax"]) == (True, "20s")
        doors = get_vehicle(emulator.address, "")["doors"]
        assert isinstance(doors, list) and doors[-1] == {"position": 99, "state": 99}


def test_serve_refuses_a_bad_rate_limit_table_and_crossed_delays(tmp_path: Path) -> None:
    bad = fleet_emulator("serve", "--rate-limits", str(tmp_path / "missing.yaml"))
    assert bad.returncode == 2 and "neither a preset" in bad.stderr
    crossed = fleet_emulator("serve", "--wake-up-delay-min", "2m", "--wake-up-delay-max", "1m")
    assert crossed.returncode == 2 and "--wake-up-delay-min" in crossed.stderr
