"""Which values the fields of fleets, vehicles and events may hold, checked wherever a client supplies them.

``CHECKS`` names the rule of a field by its name, wherever it stands (``latitude`` in a vehicle's location
and in a position-changed event alike); a text field without a rule of its own may have ``MAX_TEXT``
characters, a list ``MAX_ITEMS`` items. ``check_value`` walks a whole value, ``check_values_at`` the parts
of a value that an update mask names, adding one violation per bad field, named as the client wrote it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

from fleet_emulator.domain.errors import Violations
from fleet_emulator.domain.field_paths import FieldPath
from fleet_emulator.domain.flow import is_valid_flow_id

MAX_LABEL = 64
MAX_TEXT = 200
MAX_ITEMS = 16
Check = Callable[[Any], str | None]


def text(most: int, required: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if required and not value.strip():
            return "must not be empty"
        return f"must be at most {most} characters" if len(value) > most else None

    return check


def number(low: float, high: float, zero_too: bool = False) -> Check:
    def check(value: Any) -> str | None:
        if (zero_too and value == 0) or (math.isfinite(value) and low <= value <= high):
            return None
        return f"must be {'0 (unknown) or ' if zero_too else ''}between {low:g} and {high:g}"

    return check


def _flow_id(value: Any) -> str | None:
    if not value or is_valid_flow_id(value):
        return None
    return "must be 1 to 128 letters, digits or ._:-"


CHECKS: dict[str, Check] = {
    "label": text(MAX_LABEL),
    "model_year": number(1886, 2100, zero_too=True),
    "seats": number(0, 100),
    "battery_capacity_kwh": number(0, 1000),
    "latitude": number(-90, 90),
    "longitude": number(-180, 180),
    "heading_degrees": number(0, 360),
    "speed_kmh": number(0, 500),
    "state_of_charge_percent": number(0, 100),
    "range_km": number(0, 10_000),
    "flow_id": _flow_id,
}


def check_value(value: Any, where: str, violations: Violations, checks: dict[str, Check] = CHECKS) -> None:
    """Add a violation for every field of ``value`` (a dataclass, at any depth) that breaks its rule."""
    for field in dataclasses.fields(value):
        _check_field(field.name, getattr(value, field.name), f"{where}.{field.name}", violations, checks)


def _check_field(name: str, item: Any, where: str, violations: Violations, checks: dict[str, Check]) -> None:
    rule = checks.get(name)
    problem = rule(item) if rule is not None else None
    if problem is None and isinstance(item, str):
        problem = text(MAX_TEXT)(item)
    if problem is None and isinstance(item, tuple) and len(item) > MAX_ITEMS:
        problem = f"must have at most {MAX_ITEMS} items"
    if problem is not None:
        violations.add(where, problem)
    elif dataclasses.is_dataclass(item):
        check_value(item, where, violations, checks)
    elif isinstance(item, tuple):
        for index, element in enumerate(item):
            if dataclasses.is_dataclass(element):
                check_value(element, f"{where}[{index}]", violations, checks)


def check_values_at(
    source: Any,
    paths: Sequence[FieldPath],
    where: str,
    violations: Violations,
    checks: dict[str, Check] = CHECKS,
) -> None:
    """Check the values of ``source`` at each path (which must name a field)."""
    for path in paths:
        value, name = source, ""
        for name in path.domain.split("."):
            value = getattr(value, name)
        _check_field(name, value, f"{where}.{path.name}", violations, checks)
