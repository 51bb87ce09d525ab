"""Scenarios: YAML files describing the fleets and vehicles the emulator starts with.

A fleet lists explicit ``vehicles`` and/or asks to ``generate`` a number of them around its ``area``;
generated vehicles are deterministic for the scenario's ``seed`` (same ids, labels, positions and states on
every load). Every value in a vehicle's state may be given explicitly; what is left out takes a realistic
default. Errors name the file and the path of the offending field.
"""

from __future__ import annotations

import dataclasses
import math
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

from fleet_emulator.domain import models
from fleet_emulator.domain.models import Fleet, Vehicle
from fleet_emulator.domain.validation import FLEET_ID_PATTERN

E = TypeVar("E", bound=Enum)
DEMO = "demo.yaml"
STATE_ENUMS: dict[str, type[Enum]] = {
    "connectivity": models.ConnectivityState,
    "operational_status": models.OperationalStatus,
    "lock_state": models.LockState,
}
DOOR_POSITIONS = (
    models.DoorPosition.FRONT_LEFT,
    models.DoorPosition.FRONT_RIGHT,
    models.DoorPosition.SLIDING_RIGHT,
    models.DoorPosition.TAILGATE,
)


class ScenarioError(ValueError):
    """A scenario file that cannot be loaded; the message names the file and the field."""


@dataclass(frozen=True)
class Scenario:
    name: str
    fleets: tuple[Fleet, ...]
    vehicles: tuple[Vehicle, ...]


def load_scenario(path: str | Path | None, now: datetime) -> Scenario:
    """Read a scenario file, or the bundled demo scenario when ``path`` is None."""
    if path is None:
        source = "demo.yaml (bundled)"
        text = resources.files("fleet_emulator.scenarios").joinpath(DEMO).read_text()
    else:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ScenarioError(f"{source}: cannot read: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{source}: not valid YAML: {exc}") from exc
    return _Parser(source, now).scenario(data)


class _Parser:
    def __init__(self, source: str, now: datetime) -> None:
        self.source = source
        self.now = now

    def fail(self, where: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.source}: {where}: {problem}")

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "must be a mapping")
        return value

    def scenario(self, data: Any) -> Scenario:
        data = self.mapping(data, "top level")
        rng = random.Random(data.get("seed", 0))
        fleets: list[Fleet] = []
        vehicles: list[Vehicle] = []
        for i, raw in enumerate(data.get("fleets") or []):
            where = f"fleets[{i}]"
            raw = self.mapping(raw, where)
            fleet = self.fleet(raw, where)
            fleets.append(fleet)
            vehicles += self.fleet_vehicles(raw, fleet, where, rng)
        for kind, ids in (("fleet", [f.id for f in fleets]), ("vehicle", [v.id for v in vehicles])):
            if len(set(ids)) != len(ids):
                raise self.fail("fleets", f"{kind} ids must be unique")
        return Scenario(str(data.get("name", "unnamed")), tuple(fleets), tuple(vehicles))

    def fleet(self, raw: dict[str, Any], where: str) -> Fleet:
        if "id" not in raw:
            raise self.fail(f"{where}.id", "is required")
        if not FLEET_ID_PATTERN.match(str(raw["id"])):
            raise self.fail(f"{where}.id", "must be lowercase letters, digits or hyphens")
        return Fleet(
            id=str(raw["id"]),
            display_name=str(raw.get("display_name", raw["id"])),
            city=str(raw.get("city", "")),
            time_zone=str(raw.get("time_zone", "UTC")),
            update_time=self.now,
        )

    def fleet_vehicles(
        self, raw: dict[str, Any], fleet: Fleet, where: str, rng: random.Random
    ) -> list[Vehicle]:
        area = self.mapping(raw.get("area", {}), f"{where}.area")
        spec = self.spec(raw.get("vehicle_spec", {}), f"{where}.vehicle_spec")
        result: list[Vehicle] = []
        for j, item in enumerate(raw.get("vehicles") or []):
            item_where = f"{where}.vehicles[{j}]"
            base = _generated(rng, fleet.id, str(len(result) + 1), spec, area, self.now)
            result.append(self.vehicle(self.mapping(item, item_where), base, item_where))
        gen = self.mapping(raw.get("generate", {}), f"{where}.generate")
        first_label = int(gen.get("first_label", 1))
        for k in range(int(gen.get("count", 0))):
            result.append(_generated(rng, fleet.id, str(first_label + k), spec, area, self.now))
        return result

    def spec(self, raw: Any, where: str) -> models.VehicleSpec:
        raw = dict(self.mapping(raw, where))
        if "automation_level" in raw:
            raw["automation_level"] = self.enum(models.AutomationLevel, raw["automation_level"], where)
        try:
            return models.VehicleSpec(**raw)
        except TypeError as exc:
            raise self.fail(where, f"unknown field ({exc})") from exc

    def enum(self, kind: type[E], value: Any, where: str) -> E:
        try:
            return kind[str(value).upper()]
        except KeyError:
            names = ", ".join(m.name for m in kind if m.value)
            raise self.fail(where, f"unknown value {value!r}; expected one of {names}") from None

    def vehicle(self, raw: dict[str, Any], base: Vehicle, where: str) -> Vehicle:
        changes: dict[str, Any] = {}
        for key, value in raw.items():
            at = f"{where}.{key}"
            if key == "id":
                try:
                    changes["id"] = str(uuid.UUID(str(value)))
                except ValueError:
                    raise self.fail(at, f"{value!r} is not a UUID") from None
            elif key == "label":
                changes["label"] = str(value)
            elif key == "spec":
                changes["spec"] = dataclasses.replace(base.spec, **vars(self.spec(value, at)))
            elif key in ("connectivity", "operational_status", "lock_state"):
                changes[key] = self.enum(STATE_ENUMS[key], value, at)
            elif key in ("location", "battery"):
                changes[key] = self.part(key, value, getattr(base, key), at)
            else:
                raise self.fail(at, "unknown field")
        return dataclasses.replace(base, **changes).stamped(self.now)

    def part(self, key: str, value: Any, current: Any, where: str) -> Any:
        fields = dict(self.mapping(value, where))
        if "charging_state" in fields:
            fields["charging_state"] = self.enum(models.ChargingState, fields["charging_state"], where)
        try:
            return dataclasses.replace(current, **fields)
        except TypeError as exc:
            raise self.fail(where, f"unknown field ({exc})") from exc


def _generated(
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
    doors = tuple(models.Door(p, models.DoorState.CLOSED) for p in DOOR_POSITIONS)
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
        doors=doors,
    ).stamped(now)
