"""Hypothesis strategies for fuzzing the emulator's RPCs, driven by the request's message descriptor.

``typed_requests`` builds well-typed requests of any request type (of the emulated API and of the admin
service) from the fields' types, so that fields and RPCs added later are fuzzed too; a field of a type this
module does not know fails loudly until it learns it. Half of them are near-valid: each field a plausible
value (the emulator's own ids, etags, page tokens and message ids for the fields they belong in, new ids of
the right shape, small numbers, recent times, short durations, the scenario's YAML) and now and then an
adversarial one, so that the requests get past validation into the handlers. In the others every field is
adversarial. Strings come from adversarial values (empty, whitespace, control and unicode characters, long
ones of 9 KB and 100 KB that errors might echo, random UUIDs, message ids of any size), from the real values
of the running emulator (``Seeds``: ids, etags, page tokens, the scenario's YAML...), as they are and slightly
mangled, and from values meaningful to one field (RPC names of fault rules and rate limits, namespaces,
presets); field-mask paths also from real and near-real paths. Integers of every width come from their edges
and anywhere in range (int32s also from the page-size edges and the gRPC codes), doubles and floats anywhere
(NaN and infinities too), enums also from values no proto defines, bytes short and long. Well-known types get
their own: ``Timestamp`` and ``Duration`` valid, at the edges of their range (year 1, 9999-12-31T23:59:59,
±10,000 years, and the virtual clock's 1970-01-02 and 9000-01-01) and beyond them (seconds out of range, nanos
negative, of the other sign or ≥ 1e9); ``Any`` packs real ``google.rpc`` details (``RetryInfo``,
``ErrorInfo``...) or garbage type URLs and bytes; ``Struct``, ``Value`` and ``ListValue`` hold JSON-like
values; map fields get dictionaries. ``malformed_bodies`` builds raw request bytes that may not parse: random
bytes, truncated valid messages, and records with any wire type (so wrong ones), invalid field numbers,
invalid UTF-8 in string fields or declared lengths beyond the data.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf import any_pb2, duration_pb2, message_factory, struct_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from hypothesis import strategies as st

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT32_MAX, UINT64_MAX = 2**32 - 1, 2**64 - 1
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
    # admin: vehicles (v2 paths), fleets, policies
    "location",
    "location.recorded_time",
    "battery",
    "battery.state_of_charge_percent",
    "battery.charging_state",
    "lock_state",
    "doors",
    "update_time",
    "fleet_id",
    "display_name",
    "city",
    "time_zone",
    "vehicle_count",
    "auth_mode",
    "rate_limits",
    "wake_up_delay_min",
    "wake_up_delay_max",
    "unknown_values",
    "poll_interval",
    "policies.auth_mode",
    "",
    ".",
    "battery..range_km",
)
PAGE_SIZE_EDGES = (0, 1, 2, 50, 999, 1000, 1001, -1, INT32_MIN, INT32_MAX)
GRPC_CODES = (*range(17), 17, 99, -1)  # every google.rpc.Code, and some that are not
NINE_KB, HUNDRED_KB = 9 * 1024, 100 * 1024
LONG_STRINGS = (
    "x" * NINE_KB,
    "x" * HUNDRED_KB,
    "é" * NINE_KB,  # 2 bytes each in UTF-8, 6 characters each percent-encoded in grpc-message
    "%" * NINE_KB,
    "\x01" * NINE_KB,
    "🚐" * (HUNDRED_KB // 4),
    "hamburg" * (NINE_KB // 7),
    "a-" * (HUNDRED_KB // 2),
)
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
    "{{ . }}",
    "${jndi:ldap://x}",
    "\ufffd",
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

# google.protobuf.Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
YEAR_1 = -62135596800
YEAR_9999_END = 253402300799
NOW_ISH = 1795327200  # 2026-11-22, the virtual clock of the API tests
# The range of the emulator's virtual clock (domain/clock.py): 1970-01-02 to 9000-01-01.
CLOCK_EARLIEST, CLOCK_LATEST = 86_400, 221_845_392_000
TIMESTAMP_SECONDS = (
    0,
    1,
    -1,
    CLOCK_EARLIEST - 1,
    CLOCK_EARLIEST,
    CLOCK_LATEST,
    CLOCK_LATEST + 1,
    YEAR_1,
    YEAR_1 - 1,
    YEAR_9999_END,
    YEAR_9999_END + 1,
    NOW_ISH,
    NOW_ISH + 3600,
    2**31 - 1,
    2**31,
    2**32,
    -(2**31) - 1,
    INT64_MIN,
    INT64_MAX,
)
# google.protobuf.Duration: ±315,576,000,000 s (about 10,000 years), nanos of the seconds' sign.
DURATION_MAX = 315_576_000_000
DURATION_SECONDS = (
    0,
    1,
    -1,
    10,
    60,
    3600,
    86_400,
    30 * 86_400,
    30 * 86_400 + 1,
    DURATION_MAX,
    DURATION_MAX + 1,
    -DURATION_MAX,
    -DURATION_MAX - 1,
    INT64_MIN,
    INT64_MAX,
)
NANOS = (0, 1, 999_999_999, 1_000_000_000, -1, -999_999_999, -1_000_000_000, INT32_MIN, INT32_MAX)
TYPE_URL_PREFIX = "type.googleapis.com/"
RPC_DETAILS = (
    "google.rpc.RetryInfo",
    "google.rpc.ErrorInfo",
    "google.rpc.QuotaFailure",
    "google.rpc.BadRequest",
    "google.rpc.ResourceInfo",
    "google.rpc.DebugInfo",
)
ODD_TYPE_URLS = (
    "",
    "nope",
    TYPE_URL_PREFIX,
    TYPE_URL_PREFIX + "google.rpc.Nope",
    TYPE_URL_PREFIX + "google.protobuf.Any",
    "/google.rpc.RetryInfo",
    "http://example.com/google.rpc.RetryInfo",
    "type.googleapis.com/google.rpc.RetryInfo/",
    *(TYPE_URL_PREFIX + name for name in RPC_DETAILS),  # with bytes that may not parse as them
)
RPC_NAMES = (
    "*",
    "GetVehicle",
    "ListVehicles",
    "ListFleets",
    "GetFleet",
    "StreamVehicleEvents",
    "PollVehicleEvents",
    "SubscribeToVehicleStates",
    "WakeUpVehicle",
    "LockVehicle",
    "HonkHorn",
    "UpdateVehicle",
    "moia.fleet.state.v2.FleetStateService/GetVehicle",
    "moia.fleet.state.v1beta4.FleetStateService/StreamVehicleEvents",
    "/moia.fleet.state.v1.FleetStateService/ListVehicles",
    "moia.fleet.state.v3.FleetStateService/GetVehicle",
    "emulator.admin.v1.AdminService/ResetEmulator",
    "getvehicle",
    "Get*",
)
NAMESPACES = ("", "default", "fuzz-0", "fuzz-not-used", "UPPER", "-lead", "a" * 63, "a" * 64, "a b", ".")
# Values that mean something to one field of the admin service, mixed into the field's usual values.
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "emulator.admin.v1.Fault.method": st.sampled_from(RPC_NAMES),
    "emulator.admin.v1.RateLimit.method": st.sampled_from(RPC_NAMES),
    "emulator.admin.v1.ListJournalEntriesRequest.method": st.sampled_from(RPC_NAMES),
    "emulator.admin.v1.UpdatePoliciesRequest.rate_limit_preset": st.sampled_from(
        ("seed-001", "off", "SEED-001")
    ),
    "emulator.admin.v1.DeleteNamespaceRequest.namespace": st.sampled_from(NAMESPACES),
    "emulator.admin.v1.FailCall.code": st.sampled_from(GRPC_CODES),
    "emulator.admin.v1.BreakStream.code": st.sampled_from(GRPC_CODES),
    "emulator.admin.v1.PoorConnection.code": st.sampled_from(GRPC_CODES),
    "emulator.admin.v1.Fault.probability": st.sampled_from((0.0, 0.5, 1.0, 1.5, -0.5, float("nan"))),
    "emulator.admin.v1.ListJournalEntriesRequest.code": st.sampled_from(GRPC_CODES),
}
# Valid values of those fields, for near-valid requests.
VALID_CODES = st.integers(1, 16)
TAME_FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    **FIELD_VALUES,
    "emulator.admin.v1.Fault.method": st.sampled_from(RPC_NAMES[:13]),
    "emulator.admin.v1.RateLimit.method": st.sampled_from(RPC_NAMES[:13]),
    "emulator.admin.v1.ListJournalEntriesRequest.method": st.sampled_from(RPC_NAMES[:13]),
    "emulator.admin.v1.UpdatePoliciesRequest.rate_limit_preset": st.sampled_from(("", "seed-001", "off")),
    "emulator.admin.v1.DeleteNamespaceRequest.namespace": st.sampled_from(("fuzz-0", "fuzz-not-used")),
    "emulator.admin.v1.FailCall.code": VALID_CODES,
    "emulator.admin.v1.BreakStream.code": VALID_CODES,
    "emulator.admin.v1.PoorConnection.code": st.sampled_from((0, 4, 14)),
    "emulator.admin.v1.Fault.probability": st.sampled_from((0.0, 0.5, 1.0)),
    "emulator.admin.v1.ListJournalEntriesRequest.code": st.integers(0, 16),
    "emulator.admin.v1.FailCall.reason": st.sampled_from(("", "MAINTENANCE", "FAULT_INJECTED")),
}


@dataclass(frozen=True)
class Seeds:
    """Strings that mean something to the running emulator, in pools of one kind each (fleet ids, page
    tokens, event stream ids...): a kind is drawn, then a value of that kind. ``named`` holds the pools by
    the request field they belong in (``fleet_id``, ``vehicle_id``, ``event_id``, ``page_token``, ``etag``,
    ``last_message_id``), for near-valid requests; ``scenario`` is the YAML of the emulator's scenario, for
    ``LoadScenario``."""

    pools: tuple[tuple[str, ...], ...]
    scenario: str = ""
    named: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def pool(self, name: str) -> tuple[str, ...]:
        return next((values for key, values in self.named if key == name and values), ())


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
        st.sampled_from(LONG_STRINGS),
    )


def _scenarios(seeds: Seeds) -> st.SearchStrategy[str]:
    """The scenario's YAML as it is, with a line dropped, or with one value replaced by an odd one."""
    lines = seeds.scenario.splitlines(keepends=True)
    if not lines:
        return st.just("")

    def dropped(index: int) -> str:
        return "".join(lines[:index] + lines[index + 1 :])

    def replaced(pair: tuple[int, str]) -> str:
        index, value = pair
        key, colon, _ = lines[index].partition(":")
        edited = f"{key}: {value}\n" if colon else value + "\n"
        return "".join([*lines[:index], edited, *lines[index + 1 :]])

    odd_values = st.sampled_from(
        ("", "-1", "1e400", ".nan", "[]", "{}", "null", "'\x00'", "!!binary AAAA", "*alias", "&a [*a]")
    )
    return st.one_of(
        st.just(seeds.scenario),
        st.integers(0, len(lines) - 1).map(dropped),
        st.tuples(st.integers(0, len(lines) - 1), odd_values | st.text(max_size=20)).map(replaced),
    )


def int32s() -> st.SearchStrategy[int]:
    return st.sampled_from(PAGE_SIZE_EDGES) | st.integers(INT32_MIN, INT32_MAX)


def timestamps() -> st.SearchStrategy[timestamp_pb2.Timestamp]:
    """Valid times (recent ones, the edges of the range), and seconds or nanos out of range."""
    seconds = st.one_of(
        st.sampled_from(TIMESTAMP_SECONDS),
        st.integers(NOW_ISH - 10**8, NOW_ISH + 10**8),
        st.integers(YEAR_1, YEAR_9999_END),
        st.integers(INT64_MIN, INT64_MAX),
    )
    nanos = st.sampled_from(NANOS) | st.integers(0, 999_999_999) | st.integers(INT32_MIN, INT32_MAX)
    return st.builds(timestamp_pb2.Timestamp, seconds=seconds, nanos=nanos)


def durations() -> st.SearchStrategy[duration_pb2.Duration]:
    """Valid durations (short ones, the edges of the range), and seconds or nanos out of range or of
    different signs."""
    seconds = st.one_of(
        st.sampled_from(DURATION_SECONDS),
        st.integers(-100_000, 100_000),
        st.integers(-DURATION_MAX, DURATION_MAX),
        st.integers(INT64_MIN, INT64_MAX),
    )
    nanos = (
        st.sampled_from(NANOS) | st.integers(-999_999_999, 999_999_999) | st.integers(INT32_MIN, INT32_MAX)
    )
    return st.builds(duration_pb2.Duration, seconds=seconds, nanos=nanos)


def _details(seeds: Seeds) -> st.SearchStrategy[Message]:
    """Real google.rpc detail messages, with adversarial strings."""
    text = strings(seeds)
    small = st.lists(text, max_size=3)
    rpc = error_details_pb2
    return st.one_of(
        st.builds(rpc.RetryInfo, retry_delay=durations()),
        st.builds(rpc.ErrorInfo, reason=text, domain=text, metadata=st.dictionaries(text, text, max_size=3)),
        st.builds(
            rpc.QuotaFailure,
            violations=st.lists(
                st.builds(rpc.QuotaFailure.Violation, subject=text, description=text), max_size=3
            ),
        ),
        st.builds(
            rpc.BadRequest,
            field_violations=st.lists(
                st.builds(rpc.BadRequest.FieldViolation, field=text, description=text), max_size=3
            ),
        ),
        st.builds(rpc.ResourceInfo, resource_type=text, resource_name=text, owner=text, description=text),
        st.builds(rpc.DebugInfo, stack_entries=small, detail=text),
        st.builds(rpc.LocalizedMessage, locale=text, message=text),
        st.builds(rpc.RequestInfo, request_id=text, serving_data=text),
    )


def _packed(detail: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(detail)
    return packed


def anys(seeds: Seeds) -> st.SearchStrategy[any_pb2.Any]:
    """Packed real details, and Anys whose type URL or bytes are garbage."""
    type_urls = st.sampled_from(ODD_TYPE_URLS) | strings(seeds)
    garbage = st.builds(any_pb2.Any, type_url=type_urls, value=byte_strings())
    return _details(seeds).map(_packed) | garbage


JSON_SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=False), st.text(max_size=20)
)
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _struct(fields: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(fields)
    return message


def _value(value: Any) -> struct_pb2.Value:
    message = struct_pb2.Value()
    if isinstance(value, dict):
        message.struct_value.update(value)
    elif isinstance(value, list):
        message.list_value.extend(value)
    elif value is None:
        message.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        message.bool_value = value
    elif isinstance(value, float):
        message.number_value = value
    else:
        message.string_value = value
    return message


def _list_value(values: list[Any]) -> struct_pb2.ListValue:
    message = struct_pb2.ListValue()
    message.extend(values)
    return message


def byte_strings() -> st.SearchStrategy[bytes]:
    long = st.sampled_from((b"\x00" * NINE_KB, b"\xff" * HUNDRED_KB))
    return st.binary(max_size=64) | long


# Message types with their own strategy instead of one built from their fields.
WELL_KNOWN: dict[str, Callable[[Seeds], st.SearchStrategy[Any]]] = {
    "google.protobuf.Timestamp": lambda seeds: timestamps(),
    "google.protobuf.Duration": lambda seeds: durations(),
    "google.protobuf.Any": anys,
    "google.protobuf.Struct": lambda seeds: st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4).map(
        _struct
    ),
    "google.protobuf.Value": lambda seeds: JSON_VALUES.map(_value),
    "google.protobuf.ListValue": lambda seeds: st.lists(JSON_VALUES, max_size=4).map(_list_value),
}
SCALARS: dict[int, Callable[[Seeds], st.SearchStrategy[Any]]] = {
    FieldDescriptor.TYPE_STRING: strings,
    FieldDescriptor.TYPE_BYTES: lambda seeds: byte_strings(),
    FieldDescriptor.TYPE_BOOL: lambda seeds: st.booleans(),
    FieldDescriptor.TYPE_DOUBLE: lambda seeds: st.floats(),
    FieldDescriptor.TYPE_FLOAT: lambda seeds: st.floats(width=32),
    FieldDescriptor.TYPE_INT32: lambda seeds: int32s(),
    FieldDescriptor.TYPE_SINT32: lambda seeds: int32s(),
    FieldDescriptor.TYPE_SFIXED32: lambda seeds: int32s(),
    FieldDescriptor.TYPE_INT64: lambda seeds: (
        st.sampled_from((0, -1, INT64_MIN, INT64_MAX)) | st.integers(INT64_MIN, INT64_MAX)
    ),
    FieldDescriptor.TYPE_SINT64: lambda seeds: st.integers(INT64_MIN, INT64_MAX),
    FieldDescriptor.TYPE_SFIXED64: lambda seeds: st.integers(INT64_MIN, INT64_MAX),
    FieldDescriptor.TYPE_UINT32: lambda seeds: st.sampled_from((0, UINT32_MAX)) | st.integers(0, UINT32_MAX),
    FieldDescriptor.TYPE_FIXED32: lambda seeds: st.integers(0, UINT32_MAX),
    FieldDescriptor.TYPE_UINT64: lambda seeds: st.sampled_from((0, UINT64_MAX)) | st.integers(0, UINT64_MAX),
    FieldDescriptor.TYPE_FIXED64: lambda seeds: st.integers(0, UINT64_MAX),
}


def _single_values(field: FieldDescriptor, seeds: Seeds, tame: bool) -> st.SearchStrategy[Any]:
    """Values of one element of the field (the field itself unless it is repeated): anything, or (tame)
    mostly plausible values and now and then anything."""
    wild = _wild_values(field, seeds)
    if not tame:
        return wild
    plausible = _tame_values(field, seeds)
    # sampled_from draws about uniformly (one_of does not: it picks the last of its branches half the time)
    return st.sampled_from((True,) * TAME_WEIGHT + (False,)).flatmap(lambda yes: plausible if yes else wild)


TAME_WEIGHT = 19  # a field of a near-valid request is plausible 19 times in 20


def _wild_values(field: FieldDescriptor, seeds: Seeds) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        message_type: Any = field.message_type
        if message_type.full_name in WELL_KNOWN:
            return WELL_KNOWN[message_type.full_name](seeds)
        return st.deferred(lambda: _requests(message_type, seeds, False))  # deferred: types may recurse
    if field.full_name == FIELD_MASK_PATHS:
        return st.sampled_from(PATHS) | strings(seeds)
    if field.full_name == SCENARIO_YAML:
        return _scenarios(seeds) | strings(seeds)
    if field.type == FieldDescriptor.TYPE_ENUM:
        enum_type: Any = field.enum_type
        known = [v.number for v in enum_type.values]
        return st.sampled_from(known) | st.integers(INT32_MIN, INT32_MAX)
    if field.type not in SCALARS:
        raise NotImplementedError(
            f"no fuzz strategy for {field.full_name} yet: teach tests/api/strategies.py"
        )
    values = SCALARS[field.type](seeds)
    if field.full_name in FIELD_VALUES:
        return FIELD_VALUES[field.full_name] | values
    return values


SCENARIO_YAML = "emulator.admin.v1.LoadScenarioRequest.yaml"
TIME_ZONES = ("Europe/Berlin", "UTC", "America/New_York", "Mars/Olympus_Mons")
PLAIN_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " -_.", max_size=24)
FRESH_FLEET_IDS = st.from_regex(r"[a-z][a-z0-9-]{2,20}", fullmatch=True)
TAME_WELL_KNOWN: dict[str, Callable[[Seeds], st.SearchStrategy[Any]]] = {
    "google.protobuf.Timestamp": lambda seeds: st.builds(
        timestamp_pb2.Timestamp,
        seconds=st.integers(NOW_ISH - 10**6, NOW_ISH + 10**6),
        nanos=st.integers(0, 999_999_999),
    ),
    "google.protobuf.Duration": lambda seeds: st.builds(
        duration_pb2.Duration, seconds=st.integers(0, 3600), nanos=st.sampled_from((0, 500_000_000))
    ),
    "google.protobuf.Any": lambda seeds: _details(seeds).map(_packed),
}
TAME_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=16),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_DOUBLE: st.floats(0, 100),
    FieldDescriptor.TYPE_FLOAT: st.floats(0, 100, width=32),
    **dict.fromkeys(
        (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32),
        st.integers(0, 100),
    ),
    **dict.fromkeys(
        (
            FieldDescriptor.TYPE_INT64,
            FieldDescriptor.TYPE_SINT64,
            FieldDescriptor.TYPE_SFIXED64,
            FieldDescriptor.TYPE_UINT32,
            FieldDescriptor.TYPE_FIXED32,
            FieldDescriptor.TYPE_UINT64,
            FieldDescriptor.TYPE_FIXED64,
        ),
        st.integers(0, 1000),
    ),
}


def _tame_strings(field: FieldDescriptor, seeds: Seeds) -> st.SearchStrategy[str]:
    """Unset, the emulator's own values for the field's kind (a fleet id for ``fleet_id`` and
    ``Fleet.id``...) or new ones of the right shape; plain short text for other fields."""
    name = {"vehicle_ids": "vehicle_id", "fleet_ids": "fleet_id"}.get(field.name, field.name)
    containing: Any = field.containing_type
    owner = containing.name
    if name == "id" and owner in ("Fleet", "Vehicle"):
        name = f"{owner.lower()}_id"
    fresh = {
        "fleet_id": FRESH_FLEET_IDS,
        "vehicle_id": st.uuids().map(str),
        "time_zone": st.sampled_from(TIME_ZONES),
    }
    choices = [st.just(""), *(st.sampled_from(pool) for pool in [seeds.pool(name)] if pool)]
    if name in fresh:
        choices.append(fresh[name])
    return st.one_of(*choices) if len(choices) > 1 else PLAIN_TEXT


def _tame_values(field: FieldDescriptor, seeds: Seeds) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        message_type: Any = field.message_type
        if message_type.full_name in TAME_WELL_KNOWN:
            return TAME_WELL_KNOWN[message_type.full_name](seeds)
        if message_type.full_name in WELL_KNOWN:
            return WELL_KNOWN[message_type.full_name](seeds)
        return st.deferred(lambda: _requests(message_type, seeds, True))
    if field.full_name == FIELD_MASK_PATHS:
        return st.sampled_from(PATHS)
    if field.full_name == SCENARIO_YAML:
        return st.just(seeds.scenario)
    if field.full_name in TAME_FIELD_VALUES:
        return TAME_FIELD_VALUES[field.full_name]
    if field.type == FieldDescriptor.TYPE_ENUM:
        enum_type: Any = field.enum_type
        return st.sampled_from([v.number for v in enum_type.values])
    if field.type == FieldDescriptor.TYPE_STRING:
        return _tame_strings(field, seeds)
    if field.type in TAME_SCALARS:
        return TAME_SCALARS[field.type]
    return _wild_values(field, seeds)


def _field_values(field: FieldDescriptor, seeds: Seeds, tame: bool) -> st.SearchStrategy[Any]:
    message_type: Descriptor | None = field.message_type
    most = 2 if tame else 4
    if message_type is not None and message_type.GetOptions().map_entry:
        keys = _single_values(message_type.fields_by_name["key"], seeds, tame)
        values = _single_values(message_type.fields_by_name["value"], seeds, tame)
        return st.dictionaries(keys, values, max_size=most)
    values = _single_values(field, seeds, tame)
    return st.lists(values, max_size=most) if field.is_repeated else values


@functools.cache  # built once per request type: building them per example doubles the run time
def _requests(descriptor: Descriptor, seeds: Seeds, tame: bool) -> st.SearchStrategy[Message]:
    cls = message_factory.GetMessageClass(descriptor)
    values = {f.name: _field_values(f, seeds, tame) for f in descriptor.fields}
    unset_or_not = {name for name, f in descriptor.fields_by_name.items() if f.has_presence}
    return st.fixed_dictionaries(
        {n: v for n, v in values.items() if n not in unset_or_not},
        optional={n: v for n, v in values.items() if n in unset_or_not},
    ).map(lambda fields: cls(**fields))


@functools.cache
def typed_requests(descriptor: Descriptor, seeds: Seeds) -> st.SearchStrategy[Message]:
    """Well-typed requests of this type, those with presence maybe unset: half of them with every field an
    adversarial value, half near-valid (plausible values, now and then an adversarial one), which get past
    validation into the handlers."""
    return st.one_of(_requests(descriptor, seeds, True), _requests(descriptor, seeds, False))


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
    numbers = st.sampled_from(known) | st.integers(0, MAX_FIELD_NUMBER + 1) if known else st.integers(0, 20)
    number = draw(numbers)  # 0 and MAX_FIELD_NUMBER + 1: invalid
    wire_type = draw(st.integers(0, 7))
    return _key(number, wire_type) + draw(_PAYLOADS[wire_type])


@st.composite
def _bad_strings(draw: st.DrawFn, descriptor: Descriptor) -> bytes:
    """A string field (or, in a request without one, a message field, or else any field number) holding
    invalid UTF-8, or declaring more bytes than follow."""
    numbers = (
        [f.number for f in descriptor.fields if f.type == FieldDescriptor.TYPE_STRING]
        or [f.number for f in descriptor.fields if f.type == FieldDescriptor.TYPE_MESSAGE]
        or [1, 2, 15]
    )
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


# Printable ASCII that is not a valid namespace, for the x-emulator-namespace header.
INVALID_NAMESPACES = ("UPPER", "-lead", ".lead", "a" * 64, "a b", "a/b", "ns!", string.punctuation)
