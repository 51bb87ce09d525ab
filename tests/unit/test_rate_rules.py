"""Rate-limit tables (``domain/rate_rules.py``): the presets and the YAML file format, with its errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleet_emulator.domain.policies import RatePeriod, RateRule
from fleet_emulator.domain.rate_rules import PRESETS, RateRulesError, parse_rate, parse_rules, rules_from


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("1/s", (1, RatePeriod.SECOND)), ("30/m", (30, RatePeriod.MINUTE)), (" 4 r/m ", (4, RatePeriod.MINUTE))],
)
def test_rates_are_requests_per_second_or_minute(text: str, parsed: tuple[int, RatePeriod]) -> None:
    assert parse_rate(text) == parsed


@pytest.mark.parametrize("text", ["0/s", "1/h", "fast", "1.5/s", "/s", "-1/s"])
def test_other_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not like 1/s or 30/m"):
        parse_rate(text)


def test_a_file_is_a_list_of_rules_with_an_optional_burst() -> None:
    rules = parse_rules(
        "- {method: GetVehicle, rate: 1/s, burst: 2}\n- {method: '*', rate: 30/m}\n", "f.yaml"
    )

    assert rules == (
        RateRule("GetVehicle", 1, RatePeriod.SECOND, 2),
        RateRule("*", 30, RatePeriod.MINUTE, 0),
    )
    assert [r.describe() for r in rules] == ["GetVehicle: 1 r/s, burst 2", "*: 30 r/m"]


def test_an_empty_list_is_no_limits() -> None:
    assert parse_rules("[]", "f.yaml") == ()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("method: GetVehicle", "f.yaml: must be a YAML list of rules"),
        ("- [unclosed", "f.yaml: not YAML"),
        (
            "- {method: GetVehicle, rate: 1/s, limit: 2}",
            "f.yaml[0]: a rule has the keys method, rate and burst",
        ),
        ("- just-a-string", "f.yaml[0]: a rule has the keys"),
        ("- {rate: 1/s}", "f.yaml[0].method: is required"),
        ("- {method: '', rate: 1/s}", "f.yaml[0].method: is required"),
        ("- {method: GetVehicle}", "f.yaml[0].rate: rate 'None' is not like 1/s"),
        ("- {method: GetVehicle, rate: 1/h}", "f.yaml[0].rate: rate '1/h'"),
        ("- {method: GetVehicle, rate: 1/s, burst: -1}", "f.yaml[0].burst: must be a whole number"),
        ("- {method: GetVehicle, rate: 1/s, burst: true}", "f.yaml[0].burst: must be a whole number"),
        ("- {method: GetVehicle, rate: 1/s, burst: 1.5}", "f.yaml[0].burst: must be a whole number"),
        (
            "- {method: GetVehicle, rate: 1/s}\n- {method: GetVehicle, rate: 2/s}",
            "f.yaml: each method may have one rule only",
        ),
    ],
)
def test_a_broken_file_is_refused_naming_the_rule_and_field(text: str, problem: str) -> None:
    with pytest.raises(RateRulesError) as caught:
        parse_rules(text, "f.yaml")

    assert str(caught.value).startswith(problem)


def test_the_seed_001_preset_is_seed_001s_table_on_this_api() -> None:
    rules = {r.method: r.describe() for r in rules_from("seed-001")}

    assert rules["GetFleet"] == "GetFleet: 1 r/s, burst 2"
    assert rules["ListFleets"] == "ListFleets: 4 r/m, burst 2"
    assert rules["PollVehicleEvents"] == "PollVehicleEvents: 30 r/m, burst 10"
    assert "StreamVehicleEvents" not in rules and "*" not in rules, "streams are not limited"
    assert rules_from("off") == () == PRESETS["off"]


def test_rules_come_from_a_file_when_no_preset_has_the_name(tmp_path: Path) -> None:
    path = tmp_path / "limits.yaml"
    path.write_text("- {method: ListVehicles, rate: 10/m}\n")

    assert rules_from(str(path)) == (RateRule("ListVehicles", 10, RatePeriod.MINUTE),)
    with pytest.raises(RateRulesError, match=r"neither a preset \(seed-001, off\) nor a file"):
        rules_from(str(tmp_path / "missing.yaml"))


def test_the_readme_shows_the_seed_001_preset_as_it_is() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| (\d+/[sm]) \| (\d+) \|$", readme, re.MULTILINE)

    assert rows == [
        (r.method, f"{r.requests}/{r.period.symbol}", str(r.burst)) for r in rules_from("seed-001")
    ]
