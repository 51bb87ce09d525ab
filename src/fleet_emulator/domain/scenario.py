"""Scenarios: YAML files describing the fleets and vehicles the emulator starts with.

A file is checked against ``scenarios/scenario.schema.json`` (JSON Schema) first; every problem is reported
with the file, the line and the path of the field. A fleet lists explicit ``vehicles`` and/or asks to
``generate`` a number of them around its ``area``; generated vehicles and the defaults of explicit ones
are deterministic for the scenario's ``seed``.

Scenarios come from clients too (the admin ``LoadScenario``), so what one may cost is bounded before it is
built, as the schema states: at most ``MAX_TEXT`` characters, no YAML aliases or anchors (a few hundred
bytes of aliases expand to gigabytes), nesting at most ``MAX_DEPTH`` deep, finite numbers only, and at most
``MAX_VEHICLES`` vehicles in all. Parsing uses libyaml when PyYAML has it; the slower pass that finds the
line of a problem runs only when there is one. It is plain CPU work: callers on an event loop run it in a
thread.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from fleet_emulator.domain import models
from fleet_emulator.domain.models import Fleet, Vehicle

DEMO = "demo.yaml"
MAX_REPORTED = 10
MAX_TEXT = 4 * 1024 * 1024
MAX_DEPTH = 20
MAX_VEHICLES = 10_000
LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ENUM_FIELDS: dict[str, type[Enum]] = {
    "connectivity": models.ConnectivityState,
    "operational_status": models.OperationalStatus,
    "lock_state": models.LockState,
    "automation_level": models.AutomationLevel,
    "charging_state": models.ChargingState,
}
DOOR_POSITIONS = (
    models.DoorPosition.FRONT_LEFT,
    models.DoorPosition.FRONT_RIGHT,
    models.DoorPosition.SLIDING_RIGHT,
    models.DoorPosition.TAILGATE,
)


class ScenarioError(ValueError):
    """A scenario file that cannot be loaded; the message names the file, the line and the field."""


@dataclass(frozen=True)
class Scenario:
    name: str
    fleets: tuple[Fleet, ...]
    vehicles: tuple[Vehicle, ...]


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(
        resources.files("fleet_emulator.scenarios").joinpath("scenario.schema.json").read_text()
    )
    return loaded


def load_scenario(path: str | Path | None, now: datetime) -> Scenario:
    """Read a scenario file, or the bundled demo scenario when ``path`` is None."""
    if path is None:
        source, text = (
            "demo.yaml (bundled)",
            resources.files("fleet_emulator.scenarios").joinpath(DEMO).read_text(),
        )
    else:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ScenarioError(f"{source}: cannot read: {exc.strerror}") from exc
    return parse_scenario(text, source, now)


def parse_scenario(text: str, source: str, now: datetime) -> Scenario:
    """A scenario from YAML text; ``source`` names it in errors."""
    if len(text) > MAX_TEXT:
        raise ScenarioError(f"{source}: is {len(text)} characters long; a scenario may have {MAX_TEXT}")
    try:
        _check_shape(text, source)
        data = yaml.load(text, Loader=LOADER)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: not valid YAML: {exc}") from exc
    validate(data, text, source)
    return build(data, now, source)


def _check_shape(text: str, source: str) -> None:
    """Refuse aliases and anchors, and nesting deeper than ``MAX_DEPTH``, from the parser's events."""
    depth = 0
    for event in yaml.parse(text, Loader=LOADER):
        line = event.start_mark.line + 1 if event.start_mark is not None else 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise ScenarioError(f"{source}:{line}: YAML anchors and aliases (&name, *name) are not allowed")
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise ScenarioError(f"{source}:{line}: nested more than {MAX_DEPTH} deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def validate(data: Any, text: str, source: str) -> None:
    """Raise one ``ScenarioError`` listing every schema violation (and number that is not finite) with its
    line and field path."""
    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(data), key=lambda e: list(e.path))
    problems = [([*e.absolute_path, *_named_fields(e)[:1]], e.message) for e in errors[:MAX_REPORTED]]
    problems += [(path, "must be a finite number, not .nan or .inf") for path in _not_finite(data, [])]
    if problems:
        root = yaml.compose(text, Loader=LOADER)  # only now: needed only for the lines
        lines = [f"{source}:{_line(root, path)}: {_dotted(path)}: {what}" for path, what in problems]
        raise ScenarioError("\n".join(lines[:MAX_REPORTED]))


def _not_finite(data: Any, path: list[Any]) -> list[list[Any]]:
    """Paths of the floats in ``data`` that are NaN or infinite."""
    if isinstance(data, float):
        return [] if math.isfinite(data) else [path]
    if isinstance(data, dict):
        return [p for key, value in data.items() for p in _not_finite(value, [*path, key])]
    if isinstance(data, list):
        return [p for index, value in enumerate(data) for p in _not_finite(value, [*path, index])]
    return []


def _named_fields(error: jsonschema.ValidationError) -> list[str]:
    """The property a ``required`` or ``additionalProperties`` error is about, which its path leaves out."""
    instance, rule, schema_part = error.instance, error.validator_value, error.schema
    if error.validator == "required" and isinstance(instance, dict) and isinstance(rule, list):
        return [name for name in rule if name not in instance]
    if (
        error.validator == "additionalProperties"
        and isinstance(instance, dict)
        and isinstance(schema_part, dict)
    ):
        return [name for name in instance if name not in schema_part.get("properties", {})]
    return []


def _dotted(path: Any) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return text or "top level"


def _line(node: yaml.Node | None, path: list[Any]) -> int:
    """1-based line of the YAML node at ``path`` (or of the deepest node on the way that exists)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def build(data: dict[str, Any], now: datetime, source: str) -> Scenario:
    total = sum(len(f.get("vehicles", [])) + f.get("generate", {}).get("count", 0) for f in data["fleets"])
    if total > MAX_VEHICLES:
        raise ScenarioError(f"{source}: fleets: {total} vehicles in all; a scenario may have {MAX_VEHICLES}")
    rng = random.Random(data.get("seed", 0))
    fleets: list[Fleet] = []
    vehicles: list[Vehicle] = []
    for raw in data["fleets"]:
        fleet = Fleet(
            id=raw["id"],
            display_name=str(raw.get("display_name", raw["id"])),
            city=str(raw.get("city", "")),
            time_zone=str(raw.get("time_zone", "UTC")),
            update_time=now,
        )
        fleets.append(fleet)
        spec = models.VehicleSpec(**_enums(raw.get("vehicle_spec", {})))
        area = raw.get("area", {})
        for item in raw.get("vehicles", []):
            base = generated(rng, fleet.id, str(len(vehicles) + 1), spec, area, now)
            vehicles.append(_explicit(base, item, now))
        generate = raw.get("generate", {})
        first = generate.get("first_label", 1)
        for k in range(generate.get("count", 0)):
            vehicles.append(generated(rng, fleet.id, str(first + k), spec, area, now))
    for kind, ids in (("fleet", [f.id for f in fleets]), ("vehicle", [v.id for v in vehicles])):
        duplicates = sorted(i for i, n in Counter(ids).items() if n > 1)
        if duplicates:
            shown = ", ".join(duplicates[:MAX_REPORTED]) + (", ..." if len(duplicates) > MAX_REPORTED else "")
            raise ScenarioError(f"{source}: fleets: {kind} ids must be unique; repeated: {shown}")
    return Scenario(str(data.get("name", "unnamed")), tuple(fleets), tuple(vehicles))


def _enums(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: ENUM_FIELDS[k][v] if k in ENUM_FIELDS else v for k, v in fields.items()}


def _explicit(base: Vehicle, item: dict[str, Any], now: datetime) -> Vehicle:
    changes: dict[str, Any] = _enums(
        {k: v for k, v in item.items() if k not in ("spec", "location", "battery")}
    )
    if "id" in changes:
        changes["id"] = str(uuid.UUID(changes["id"]))
    if "label" in changes:
        changes["label"] = str(changes["label"])
    for part in ("spec", "location", "battery"):
        if part in item:
            changes[part] = dataclasses.replace(getattr(base, part), **_enums(item[part]))
    return dataclasses.replace(base, **changes).stamped(now)


def generated(
    rng: random.Random,
    fleet_id: str,
    label: str,
    spec: models.VehicleSpec,
    area: dict[str, Any],
    now: datetime,
) -> Vehicle:
    """A vehicle in a plausible, varied state, drawn from ``rng``."""
    lat0, lon0 = float(area.get("latitude", 53.5511)), float(area.get("longitude", 9.9937))
    radius = float(area.get("radius_km", 8.0)) * math.sqrt(rng.random())
    angle = rng.uniform(0, 2 * math.pi)
    lat = lat0 + radius / 111.32 * math.cos(angle)
    lon = lon0 + radius / (111.32 * math.cos(math.radians(lat0))) * math.sin(angle)
    status = rng.choices(list(models.OperationalStatus)[1:], weights=[40, 30, 15, 10, 5])[0]
    connectivity = rng.choices(list(models.ConnectivityState)[1:], weights=[70, 20, 10])[0]
    if status in (models.OperationalStatus.ON_MISSION, models.OperationalStatus.CHARGING):
        connectivity = models.ConnectivityState.ONLINE
    soc = round(rng.uniform(12, 100), 1)
    moving = status is models.OperationalStatus.ON_MISSION
    charging = models.ChargingState.NOT_CHARGING
    if status is models.OperationalStatus.CHARGING:
        charging = models.ChargingState.CHARGING
    return Vehicle(
        id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        label=label,
        fleet_id=fleet_id,
        spec=dataclasses.replace(
            spec,
            license_plate=f"{spec.license_plate}{label}" if spec.license_plate else "",
            vin=f"WV2ZZZ{rng.getrandbits(40):011X}",
        ),
        connectivity=connectivity,
        operational_status=status,
        location=models.Location(
            latitude=round(lat, 6),
            longitude=round(lon, 6),
            heading_degrees=round(rng.uniform(0, 360), 1),
            speed_kmh=round(rng.uniform(10, 50), 1) if moving else 0.0,
            recorded_time=now - timedelta(seconds=rng.randint(1, 90)),
        ),
        battery=models.Battery(soc, round(soc / 100 * 260, 1), charging),
        lock_state=models.LockState.UNLOCKED if moving else models.LockState.LOCKED,
        doors=tuple(models.Door(p, models.DoorState.CLOSED) for p in DOOR_POSITIONS),
    ).stamped(now)
