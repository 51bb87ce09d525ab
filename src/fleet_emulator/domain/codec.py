"""JSON form of domain values, used by the backends that store them as text (Redis).

``encode`` turns dataclasses into dicts, enums into their names, datetimes into ISO 8601, durations into
microseconds, bytes into base64 and tuples into lists; ``decode`` reverses it for a given dataclass type by
reading the field types, so a new field needs no codec change (and values stored before it was added decode
with its default). Unions of dataclasses
(an event's change) are tagged with ``kind``.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

T = TypeVar("T")
KIND = "kind"
MICROSECOND = timedelta(microseconds=1)


def encode(value: Any) -> Any:
    encoder = _encoders.get(type(value))
    if encoder is None:
        encoder = _encoders[type(value)] = _encoder(type(value))
    return encoder(value)


def _encoder(kind: type) -> Callable[[Any], Any]:
    """A function encoding values of exactly this type, worked out once per type."""
    if dataclasses.is_dataclass(kind):
        tagged = _union_fields(kind)
        steps = [(f.name, encode_tagged if f.name in tagged else encode) for f in dataclasses.fields(kind)]
        return lambda value: {name: step(getattr(value, name)) for name, step in steps}
    if issubclass(kind, enum.Enum):
        return lambda value: value.name
    if issubclass(kind, datetime):
        return lambda value: value.isoformat()
    if issubclass(kind, timedelta):
        return lambda value: value // MICROSECOND
    if issubclass(kind, bytes):
        return lambda value: base64.b64encode(value).decode("ascii")
    if issubclass(kind, tuple | list):
        return lambda value: [encode(v) for v in value]
    return _identity


_encoders: dict[type, Callable[[Any], Any]] = {}


def encode_tagged(value: Any) -> dict[str, Any]:
    """A dataclass member of a union, with its class name under ``kind``."""
    return {KIND: type(value).__name__, **encode(value)}


@functools.cache
def _union_fields(kind: type) -> frozenset[str]:
    """Names of the fields of a dataclass whose type is a union of several dataclasses."""
    hints = typing.get_type_hints(kind)
    return frozenset(
        name
        for name, hint in hints.items()
        if typing.get_origin(hint) in (typing.Union, types.UnionType)
        and sum(dataclasses.is_dataclass(a) for a in typing.get_args(hint)) > 1
    )


def decode(kind: Any, data: Any) -> Any:
    """The value of type ``kind`` whose JSON form is ``data``."""
    return _decoder(kind)(data)


@functools.cache
def _decoder(kind: Any) -> Callable[[Any], Any]:
    """A function decoding the JSON form of ``kind``, worked out once per type from its annotations."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        if len(options) == 1:
            inner = _decoder(options[0])
            return lambda data: None if data is None else inner(data)
        by_name = {k.__name__: _decoder(k) for k in options}
        return lambda data: None if data is None else by_name[data[KIND]](data)
    if origin is tuple:
        item = _decoder(typing.get_args(kind)[0])
        return lambda data: tuple(item(v) for v in data)
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        hints = typing.get_type_hints(kind)
        fields = [(f.name, _decoder(hints[f.name])) for f in dataclasses.fields(kind)]
        return lambda data: kind(**{name: field(data[name]) for name, field in fields if name in data})
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind.__getitem__
    if kind is datetime:
        return datetime.fromisoformat
    if kind is timedelta:
        return lambda data: timedelta(microseconds=data)
    if kind is bytes:
        return base64.b64decode
    if kind is float:
        return float
    return _identity


def _identity(value: Any) -> Any:
    return value


def decode_as(kind: type[T], data: Any) -> T:
    value: T = decode(kind, data)
    return value
