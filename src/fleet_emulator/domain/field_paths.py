"""Field-mask updates of domain dataclasses (AIP-134): copy the named paths from one value to another."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from fleet_emulator.domain.errors import Violations

T = TypeVar("T")


@dataclass(frozen=True)
class FieldPath:
    """A field path of an update mask as the client wrote it (``properties.seats``) and in domain names
    (``spec.seats``)."""

    name: str
    domain: str


def check_paths(kind: type, paths: list[str], immutable: frozenset[str], violations: Violations) -> list[str]:
    """Add a violation on ``update_mask`` for each path that names no field of ``kind`` or may not change;
    the paths that are fine."""
    if not paths:
        violations.add("update_mask", "must name at least one field path")
    fine = []
    for path in paths:
        if path in immutable:
            violations.add("update_mask", f"{path!r} cannot be changed")
        elif not _resolves(kind, path.split(".")):
            violations.add("update_mask", f"{path!r} is not a field path")
        else:
            fine.append(path)
    return fine


def copy_paths(target: T, source: T, paths: list[str]) -> T:
    """``target`` with the value at each path taken from ``source``."""
    for path in paths:
        target = _copy(target, source, path.split("."))
    return target


def _resolves(kind: Any, parts: list[str]) -> bool:
    if not parts:
        return True
    if not dataclasses.is_dataclass(kind):
        return False
    if parts[0] not in {f.name for f in dataclasses.fields(kind)}:
        return False
    return len(parts) == 1 or _resolves(_field_type(kind, parts[0]), parts[1:])


def _field_type(kind: Any, name: str) -> Any:
    return typing.get_type_hints(kind)[name]


def _copy(target: Any, source: Any, parts: list[str]) -> Any:
    head = parts[0]
    if len(parts) == 1:
        value = getattr(source, head)
    else:
        value = _copy(getattr(target, head), getattr(source, head), parts[1:])
    return dataclasses.replace(target, **{head: value})
