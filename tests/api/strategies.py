"""Hypothesis strategies for fuzzing the emulator's RPCs, driven by the request's message descriptor.

``typed_requests`` builds well-typed requests of any request type whose fields are strings, numbers, bools,
enums or messages built the same way (single, optional or repeated; a field of another type fails loudly
until this module learns it): strings come from adversarial values (empty, whitespace, control and unicode
characters, very long, random UUIDs, message ids of any size) and from the real values of the running
emulator (``Seeds``: ids, etags, page tokens...), as they are and slightly mangled, and field-mask paths also
from real and near-real paths; int32s from the page-size edges (0, 1000, 1001, -1, int32 min/max) and
anywhere in range; int64s, doubles (NaN and infinities too) and enums (values no proto defines too)
anywhere. ``malformed_bodies`` builds raw request bytes that may not parse: random bytes, truncated valid
messages, and records with any wire type (so wrong ones), invalid field numbers, invalid UTF-8 in string
fields or declared lengths beyond the data.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FIELD_MASK_PATHS = "google.protobuf.FieldMask.paths"
PATHS = (
    "label",
    "operational_status",
    "configuration",
    "properties",
    "configuration.seats",
    "properties.model_year",
    "properties.battery_capacity_kwh",
    "properties.nope",
    "connectivity",
    "etag",
    "id",
    "location.latitude",
    "*",
)
PAGE_SIZE_EDGES = (0, 1, 2, 50, 999, 1000, 1001, -1, INT32_MIN, INT32_MAX)
ODD_STRINGS = (
    "",
    " ",
    "\t\r\n",
    "\x00",
    "\u200b",
    "\ufeff",
    "hamburg\n",
    " hamburg",
    "HAMBURG",
    "-hamburg",
    "hamburg/vehicles",
    "Straße",
    "🚐",
    "a" * 63,
    "a" * 64,
    "00000000-0000-0000-0000-000000000000",
    "not-a-token",
    "%00",
    "' OR 1=1 --",
    "0-0",
    "1-0\n",
    "\uff11-\uff10",  # fullwidth digits
    "1-",
    "-1-0",
)
MANGLES: tuple[Callable[[str], str], ...] = (
    str.upper,
    lambda s: f" {s} ",
    lambda s: s + "\n",
    lambda s: "{" + s + "}",
    lambda s: "urn:uuid:" + s,
    lambda s: s.replace("-", ""),
    lambda s: s[:-1],
    lambda s: s + s,
)
INVALID_UTF8 = (b"\xff", b"\x80", b"\xc0\xaf", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\xf4\x90\x80\x80")
MAX_FIELD_NUMBER = 2**29 - 1
LENGTH_DELIMITED = 2


@dataclass(frozen=True)
class Seeds:
    """Strings that mean something to the running emulator, in pools of one kind each (fleet ids, page
    tokens, event stream ids...): a kind is drawn, then a value of that kind."""

    pools: tuple[tuple[str, ...], ...]


def strings(seeds: Seeds) -> st.SearchStrategy[str]:
    real = st.one_of(*(st.sampled_from(pool) for pool in seeds.pools))
    return st.one_of(
        st.just(""),  # unset, as often as any other kind of value
        real,
        st.tuples(real, st.sampled_from(MANGLES)).map(lambda pair: pair[1](pair[0])),
        st.sampled_from(ODD_STRINGS),
        st.uuids().map(str),
        st.tuples(st.integers(0, 2**65), st.integers(0, 2**65)).map(
            lambda p: f"{p[0]}-{p[1]}"
        ),  # message ids
        st.text(max_size=80),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", max_size=70),
        st.tuples(st.text(min_size=1, max_size=3), st.integers(1_000, 30_000)).map(lambda p: p[0] * p[1]),
    )


def int32s() -> st.SearchStrategy[int]:
    return st.sampled_from(PAGE_SIZE_EDGES) | st.integers(INT32_MIN, INT32_MAX)


def _field_values(field: FieldDescriptor, seeds: Seeds) -> st.SearchStrategy[object]:
    values: st.SearchStrategy[Any]
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        values = typed_requests(field.message_type, seeds)
    elif field.full_name == FIELD_MASK_PATHS:
        values = st.sampled_from(PATHS) | strings(seeds)
    elif field.type == FieldDescriptor.TYPE_ENUM:
        enum_type: Any = field.enum_type
        known = [v.number for v in enum_type.values]
        values = st.sampled_from(known) | st.integers(INT32_MIN, INT32_MAX)
    else:
        scalars: dict[int, st.SearchStrategy[Any]] = {
            FieldDescriptor.TYPE_STRING: strings(seeds),
            FieldDescriptor.TYPE_INT32: int32s(),
            FieldDescriptor.TYPE_INT64: st.integers(INT64_MIN, INT64_MAX),
            FieldDescriptor.TYPE_DOUBLE: st.floats(),
            FieldDescriptor.TYPE_BOOL: st.booleans(),
        }
        if field.type not in scalars:
            raise NotImplementedError(
                f"no fuzz strategy for {field.full_name} yet: teach tests/api/strategies.py"
            )
        values = scalars[field.type]
    return st.lists(values, max_size=4) if field.is_repeated else values


@functools.cache  # built once per request type: building them per example doubles the run time
def typed_requests(descriptor: Descriptor, seeds: Seeds) -> st.SearchStrategy[Message]:
    """Well-typed requests of this type: every field an adversarial value, those with presence maybe unset."""
    cls = message_factory.GetMessageClass(descriptor)
    values = {f.name: _field_values(f, seeds) for f in descriptor.fields}
    unset_or_not = {name for name, f in descriptor.fields_by_name.items() if f.has_presence}
    return st.fixed_dictionaries(
        {n: v for n, v in values.items() if n not in unset_or_not},
        optional={n: v for n, v in values.items() if n in unset_or_not},
    ).map(lambda fields: cls(**fields))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


_PAYLOADS: dict[int, st.SearchStrategy[bytes]] = {
    0: st.integers(0, 2**64 - 1).map(_varint),
    1: st.binary(min_size=8, max_size=8),
    2: st.binary(max_size=16).map(lambda b: _varint(len(b)) + b),
    3: st.just(b""),  # start group: needs a matching end group
    4: st.just(b""),  # end group
    5: st.binary(min_size=4, max_size=4),
    6: st.binary(max_size=4),  # no such wire type
    7: st.binary(max_size=4),  # no such wire type
}


@st.composite
def _records(draw: st.DrawFn, descriptor: Descriptor) -> bytes:
    """One field record with any field number and any wire type, its payload shaped for that wire type."""
    known = [f.number for f in descriptor.fields]
    number = draw(st.sampled_from(known) | st.integers(0, MAX_FIELD_NUMBER + 1))  # 0 and the last: invalid
    wire_type = draw(st.integers(0, 7))
    return _key(number, wire_type) + draw(_PAYLOADS[wire_type])


@st.composite
def _bad_strings(draw: st.DrawFn, descriptor: Descriptor) -> bytes:
    """A string field (or, in a request without one, a message field) holding invalid UTF-8, or declaring more
    bytes than follow."""
    numbers = [f.number for f in descriptor.fields if f.type == FieldDescriptor.TYPE_STRING] or [
        f.number for f in descriptor.fields if f.type == FieldDescriptor.TYPE_MESSAGE
    ]
    number = draw(st.sampled_from(numbers))
    text = draw(st.text(max_size=8)).encode() + draw(st.sampled_from(INVALID_UTF8))
    text += draw(st.text(max_size=8)).encode()
    declared = len(text) + draw(st.sampled_from((0, 1, 100, 2**31)))
    return _key(number, LENGTH_DELIMITED) + _varint(declared) + text


@st.composite
def _truncated(draw: st.DrawFn, valid: st.SearchStrategy[bytes]) -> bytes:
    body = draw(valid)
    return body[: draw(st.integers(0, max(len(body) - 1, 0)))]


@functools.cache
def malformed_bodies(descriptor: Descriptor, seeds: Seeds) -> st.SearchStrategy[bytes]:
    """Request bytes for this request type that often do not parse, and sometimes do."""
    valid = typed_requests(descriptor, seeds).map(lambda request: request.SerializeToString())
    pieces = st.one_of(
        valid, _records(descriptor), _bad_strings(descriptor), st.binary(min_size=1, max_size=8)
    )
    return st.one_of(
        st.binary(max_size=64),
        _truncated(valid),
        st.lists(pieces, min_size=1, max_size=4).map(b"".join),
    )
