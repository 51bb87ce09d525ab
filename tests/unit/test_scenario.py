"""Scenario loading: the demo is deterministic and realistic; bad files get errors naming file and field."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleet_emulator.domain.models import ConnectivityState, OperationalStatus
from fleet_emulator.domain.scenario import ScenarioError, load_scenario, parse_scenario

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def test_demo_is_deterministic_and_mixed() -> None:
    first, second = load_scenario(None, NOW), load_scenario(None, NOW)
    assert first == second
    assert [f.id for f in first.fleets] == ["hamburg", "hanover"]
    hamburg = [v for v in first.vehicles if v.fleet_id == "hamburg"]
    assert len(hamburg) >= 20
    assert len(Counter(v.connectivity for v in hamburg)) == 3, "online, asleep and offline vehicles"
    assert len({v.operational_status for v in hamburg}) >= 3
    assert all(53.4 < v.location.latitude < 53.7 for v in hamburg), "around Hamburg"
    seed_vehicle = next(v for v in hamburg if v.label == "429")
    assert seed_vehicle.id == "94d36e21-ca69-4a5b-b2b7-8068122e7362"
    assert seed_vehicle.connectivity is ConnectivityState.ONLINE
    assert seed_vehicle.operational_status is OperationalStatus.ON_MISSION


def test_etag_changes_with_content_and_only_with_it() -> None:
    vehicles = load_scenario(None, NOW).vehicles
    assert len({v.etag for v in vehicles}) == len(vehicles)
    assert load_scenario(None, NOW).vehicles[0].etag == vehicles[0].etag


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (
            "fleets:\n  - id: x\n    vehicles:\n      - {connectivity: SOMETIMES}\n",
            "fleets[0].vehicles[0].connectivity",
        ),
        ("fleets:\n  - id: x\n    vehicles:\n      - {id: not-a-uuid}\n", "fleets[0].vehicles[0].id"),
        ("fleets:\n  - id: x\n    vehicles:\n      - {colour: red}\n", "fleets[0].vehicles[0].colour"),
        ("fleets:\n  - city: Nowhere\n", "fleets[0].id"),
        ("fleets:\n  - id: x\n    vehicle_spec: {wheels: 6}\n", "fleets[0].vehicle_spec.wheels"),
        ("fleets:\n  - id: x\n    generate: {count: three}\n", "fleets[0].generate.count"),
        ("fleets:\n  - id: x\n    area: {latitude: north}\n", "fleets[0].area.latitude"),
        ("fleets: [1]\n", "fleets[0]"),
        ("fleets:\n  - id: Big City\n", "fleets[0].id"),
        ("fleets:\n  - id: a\n  - id: a\n", "fleet ids must be unique"),
        ("fleets: [\n", "not valid YAML"),
    ],
)
def test_errors_name_the_file_and_the_field(tmp_path: Path, body: str, where: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(body)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, NOW)
    assert str(path) in str(caught.value)
    assert where in str(caught.value)


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "typos.yaml"
    path.write_text(
        "name: typos\n"
        "fleets:\n"
        "  - id: x\n"
        "    generate: {cout: 3}\n"
        "    vehicles:\n"
        "      - label: 7\n"
        "        battery: {state_of_charge_percent: 120}\n"
        "        spec: {seats: six}\n"
        "fleet: []\n"
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, NOW)
    lines = str(caught.value).splitlines()
    assert f"{path}:4: fleets[0].generate.cout:" in lines[1]
    assert any(f"{path}:7: fleets[0].vehicles[0].battery.state_of_charge_percent:" in x for x in lines)
    assert any(
        f"{path}:8: fleets[0].vehicles[0].spec.seats: 'six' is not of type 'integer'" in x for x in lines
    )
    assert any(f"{path}:9: fleet:" in x for x in lines)
    assert len(lines) == 4


def test_the_demo_and_the_readme_example_follow_the_schema(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "mine.yaml"
    path.write_text(example)
    scenario = load_scenario(path, NOW)
    assert [f.id for f in scenario.fleets] == ["berlin"]
    assert len(scenario.vehicles) == 11


def test_missing_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "absent.yaml", NOW)


BOMB = "\n".join(
    [
        'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
        *(f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi", strict=True)),
        "fleets: []",
    ]
)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (BOMB, "x.yaml:1: YAML anchors and aliases (&name, *name) are not allowed"),
        ("fleets:\n  - &f {id: a}\n", "x.yaml:2: YAML anchors and aliases"),
        ("fleets: []\nx: " + "[" * 50 + "]" * 50, "x.yaml:2: nested more than 20 deep"),
        (
            "fleets:\n - id: a\n   generate: {count: 10001}\n",
            "fleets[0].generate.count: 10001 is greater than",
        ),
        (
            "fleets:\n" + "".join(f" - id: f{i}\n   generate: {{count: 4000}}\n" for i in range(3)),
            "x.yaml: fleets: 12000 vehicles in all; a scenario may have 10000",
        ),
        (
            "fleets:\n - id: a\n   vehicle_spec: {battery_capacity_kwh: .inf}\n",
            "x.yaml:3: fleets[0].vehicle_spec.battery_capacity_kwh: must be a finite number",
        ),
        ("fleets:\n - id: a\n   city: " + "x" * 201 + "\n", "x.yaml:3: fleets[0].city: "),
        (
            "fleets: []\n#" + "x" * (4 * 1024 * 1024),
            "x.yaml: is 4194316 characters long; a scenario may have 4194304",
        ),
    ],
    ids=["alias-bomb", "anchor", "deep", "count", "total", "infinite", "long-text", "huge-text"],
)
def test_what_a_scenario_may_cost_is_bounded_before_it_is_built(text: str, problem: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ScenarioError) as refused:
        parse_scenario(text, "x.yaml", NOW)
    assert problem in str(refused.value)
    assert time.perf_counter() - started < 5, "refused without expanding or building it"


def test_ten_thousand_vehicles_load_with_unique_ids_across_fleets() -> None:
    text = "fleets:\n" + "".join(f" - id: f{i}\n   generate: {{count: 2000}}\n" for i in range(5))
    scenario = parse_scenario(text, "x.yaml", NOW)
    assert len({v.id for v in scenario.vehicles}) == 10_000
    assert Counter(v.fleet_id for v in scenario.vehicles) == {f"f{i}": 2000 for i in range(5)}
