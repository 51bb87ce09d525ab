"""The first check of every request of the emulator's own services: values that no field may hold.

Protobuf lets a client send a ``google.protobuf.Timestamp`` outside 0001-01-01 to 9999-12-31 or with nanos
out of range, a ``google.protobuf.Duration`` beyond its ±10,000 years, and NaN or ±Infinity in a double;
Python cannot convert the first two and no emulated quantity is the last. ``violations_of`` walks a request
(nested messages, repeated fields and map values too) and names each such field with its path, for one
``INVALID_ARGUMENT`` (``FIELD_INVALID``) before any handler runs, on the emulated API and the admin service
alike. Which message types can hold such a value is worked out once per type, so a request that cannot
(``GetVehicleRequest``) costs one dictionary lookup.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from fleet_emulator.domain.errors import FieldViolation

TIMESTAMP = "google.protobuf.Timestamp"
DURATION = "google.protobuf.Duration"
EARLIEST_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
LATEST_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
DURATION_MAX_SECONDS = 315_576_000_000  # about 10,000 years
NANOS = 1_000_000_000
FLOATS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)
TIMESTAMP_RANGE = "must be a Timestamp from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z"
DURATION_RANGE = "must be a Duration within ±315,576,000,000 s, with nanos of the same sign below 1e9"
NOT_FINITE = "must be a finite number, not NaN or Infinity"
# protobuf's stubs type descriptors as unions of two implementations: kept loose here, as in convert.py.
Descriptor = Any

_can_hold: dict[str, bool] = {}


def _is_bad_timestamp(value: Any) -> bool:
    return not bool(EARLIEST_SECONDS <= value.seconds <= LATEST_SECONDS and 0 <= value.nanos < NANOS)


def _is_bad_duration(value: Any) -> bool:
    seconds: int = value.seconds
    nanos: int = value.nanos
    if not (-DURATION_MAX_SECONDS <= seconds <= DURATION_MAX_SECONDS and -NANOS < nanos < NANOS):
        return True
    return (seconds > 0 and nanos < 0) or (seconds < 0 and nanos > 0)


def can_hold_bad_values(descriptor: Descriptor) -> bool:
    """Whether a message of this type can hold a value ``violations_of`` refuses (cached per type)."""
    known = _can_hold.get(descriptor.full_name)
    if known is None:
        known = _can_hold[descriptor.full_name] = _search(descriptor, set())
    return known


def _search(descriptor: Descriptor, seen: set[str]) -> bool:
    if descriptor.full_name in (TIMESTAMP, DURATION):
        return True
    seen.add(descriptor.full_name)
    for field in descriptor.fields:
        if field.type in FLOATS:
            return True
        nested = field.message_type
        if nested is not None and nested.full_name not in seen and _search(nested, seen):
            return True
    return False


def violations_of(message: Message) -> list[FieldViolation]:
    """Every field of the message (at any depth) holding an invalid Timestamp or Duration, or a
    non-finite number."""
    if not can_hold_bad_values(message.DESCRIPTOR):
        return []
    found: list[FieldViolation] = []
    _walk(message, "", found)
    return found


def _walk(message: Message, path: str, found: list[FieldViolation]) -> None:
    name = message.DESCRIPTOR.full_name
    if name == TIMESTAMP:
        if _is_bad_timestamp(message):
            found.append(FieldViolation(path, TIMESTAMP_RANGE))
        return
    if name == DURATION:
        if _is_bad_duration(message):
            found.append(FieldViolation(path, DURATION_RANGE))
        return
    for field, value in message.ListFields():
        where = f"{path}.{field.name}" if path else field.name
        if field.type in FLOATS:
            items = value if field.is_repeated else [value]
            if not all(math.isfinite(v) for v in items):
                found.append(FieldViolation(where, NOT_FINITE))
        elif field.message_type is not None and can_hold_bad_values(field.message_type):
            _walk_value(field, value, where, found)


def _walk_value(field: Any, value: Any, where: str, found: list[FieldViolation]) -> None:
    if field.message_type.GetOptions().map_entry:
        values = field.message_type.fields_by_name["value"]
        if values.message_type is not None:
            for key, item in value.items():
                _walk(item, f"{where}[{key!r}]", found)
        elif values.type in FLOATS and not all(math.isfinite(v) for v in value.values()):
            found.append(FieldViolation(where, NOT_FINITE))
    elif field.is_repeated:
        for index, item in enumerate(value):
            _walk(item, f"{where}[{index}]", found)
    else:
        _walk(value, where, found)
