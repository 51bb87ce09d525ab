"""Conversion between domain dataclasses and the protobuf messages of one API version, by field name.

A ``VersionAdapter`` holds what differs between versions as data: the generated module and the proto name
of the vehicle's static description (``configuration`` in v1beta4 and v1, ``properties`` in v2; the domain
calls it ``spec``). Everything else converts by matching names: dataclass fields to message fields, enum
members to values (``ONLINE`` is ``CONNECTIVITY_STATE_ONLINE``; values a domain enum does not know read as
``UNSPECIFIED``), datetimes to Timestamps, and a union field to the oneof member named after the class
(``LockChanged`` goes in ``lock_changed``; a kind the version lacks, such as ``CommandExecuted`` in v1beta4,
leaves the oneof unset, which is what its clients would read from a newer server). Fields the domain marks
as the emulator's own are left out. The conversion plan of each type is worked out once and cached, and so
are the messages of each vehicle state (by id and etag) and of each stored event, with their bytes, the hot
paths of every List and of fan-out to many subscribers (``wire.py`` joins responses from those bytes). A v2
answer carries a stored event's bytes as the event log keeps them (a v2 ``Event``), so replaying a stream
converts nothing.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
import types
import typing
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, message_factory, timestamp_pb2
from google.protobuf.message import Message

from fleet_emulator.api.wire import field_bytes, tag
from fleet_emulator.domain.events import Event, LogEntry
from fleet_emulator.domain.journal import Kept
from fleet_emulator.domain.message_ids import MessageId
from fleet_emulator.domain.models import EPOCH, Fleet, Vehicle
from fleet_emulator.domain.service import FleetView
from fleet_emulator.domain.streams import vehicle_events_id

Convert = Callable[[Any], Any]
VEHICLE_CACHE_SIZE = 10_000  # vehicles (the latest state of each)
STORED_EVENT = "moia.fleet.state.v2.Event"  # the message event logs keep events as (``LogEntry.stored``)
EVENT_CACHE_SIZE = 2_000  # the events being fanned out now; older ones are converted again if replayed
Step = tuple[str, str, Convert, bool]  # domain attribute, proto field ("" for a union), converter, repeated
# protobuf's stubs type descriptors as optional unions of two implementations: kept loose here.
Descriptor = Any
FieldDescriptor = Any


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """The Timestamp of an aware datetime (exact to the microsecond, faster than ``FromDatetime``)."""
    since = value - EPOCH
    return timestamp_pb2.Timestamp(
        seconds=since.days * 86_400 + since.seconds, nanos=since.microseconds * 1000
    )


# google.protobuf.Duration's documented range (about 10,000 years); larger values do not fit a timedelta.
DURATION_LIMIT_S = 315_576_000_000


def duration(value: timedelta) -> duration_pb2.Duration:
    """The Duration of a timedelta."""
    result = duration_pb2.Duration()
    result.FromTimedelta(value)
    return result


def timedelta_of(value: duration_pb2.Duration) -> timedelta:
    """A client's Duration as a timedelta, kept within Duration's documented range, so that one beyond it
    reaches the caller's range check (an INVALID_ARGUMENT) instead of overflowing."""
    seconds = max(-DURATION_LIMIT_S, min(value.seconds, DURATION_LIMIT_S))
    return timedelta(seconds=seconds, microseconds=value.nanos // 1000)


@functools.cache
def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _union_members(hint: Any) -> tuple[type, ...] | None:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = tuple(
            a for a in typing.get_args(hint) if isinstance(a, type) and dataclasses.is_dataclass(a)
        )
        return members if len(members) > 1 else None
    return None


class Converted:
    """A value's message, and its bytes once asked for; ``source`` tells whether it is still current. An
    event's also keeps the stream message that carries it, built once for all its subscribers."""

    __slots__ = ("_data", "message", "source", "streamed")

    def __init__(self, source: object, message: Message) -> None:
        self.source = source
        self.message = message
        self._data: bytes | None = None
        self.streamed: tuple[MessageId, Kept] | None = None  # (message id, the stream message)

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = self.message.SerializeToString()
        return self._data


@dataclass(frozen=True)
class VersionAdapter:
    name: str
    pb: types.ModuleType
    spec_field: str
    _to: dict[tuple[type, str], tuple[Callable[..., Message], list[Step]]] = field(
        default_factory=dict, compare=False
    )
    _from: dict[tuple[type, str], list[tuple[str, Convert]]] = field(default_factory=dict, compare=False)
    _vehicles: OrderedDict[str, Converted] = field(default_factory=OrderedDict, compare=False)
    _events: OrderedDict[int, Converted] = field(default_factory=OrderedDict, compare=False)
    _streamed: dict[int, tuple[LogEntry, Kept]] = field(default_factory=dict, compare=False)

    @functools.cached_property
    def sends_stored_events(self) -> bool:
        """Whether this version's events are the stored form (``LogEntry.stored``), byte for byte."""
        return self.pb.Event.DESCRIPTOR.full_name == STORED_EVENT and self.spec_field == "properties"

    def proto_name(self, domain_name: str) -> str:
        return self.spec_field if domain_name == "spec" else domain_name

    def domain_path(self, proto_path: str) -> str:
        """A field path in proto names (``properties.seats``) in domain names (``spec.seats``)."""
        head, _, rest = proto_path.partition(".")
        head = "spec" if head == self.spec_field else head
        return f"{head}.{rest}" if rest else head

    # domain -> proto

    def to_message(self, value: Any, descriptor: Descriptor) -> Message:
        key = (type(value), descriptor.full_name)
        plan = self._to.get(key)
        if plan is None:
            plan = self._to[key] = self._plan_to(type(value), descriptor)
        make, steps = plan
        fields: dict[str, Any] = {}
        for attr, name, convert, repeated in steps:
            item = getattr(value, attr)
            if item is None:
                continue
            if not name:  # a union: the oneof member named after the value's class
                name = snake(type(item).__name__)
                member = descriptor.fields_by_name.get(name)
                if member is None:  # a kind the version lacks: left out, as its clients would read it
                    continue
                fields[name] = self.to_message(item, member.message_type)
            elif repeated:
                fields[name] = [convert(i) for i in item]
            else:
                fields[name] = convert(item)
        message: Message = make(**fields)
        return message

    def _plan_to(self, kind: type, descriptor: Descriptor) -> tuple[Callable[..., Message], list[Step]]:
        hints = typing.get_type_hints(kind)
        steps: list[Step] = []
        for f in dataclasses.fields(kind):
            hint = hints[f.name]
            if _union_members(hint):
                steps.append((f.name, "", _identity, False))
                continue
            target = descriptor.fields_by_name.get(self.proto_name(f.name))
            if target is not None:
                repeated = typing.get_origin(hint) is tuple
                steps.append((f.name, target.name, self._converter_to(hint, target), repeated))
        return message_factory.GetMessageClass(descriptor), steps

    def _converter_to(self, hint: Any, target: FieldDescriptor) -> Convert:
        if typing.get_origin(hint) is tuple:
            hint = typing.get_args(hint)[0]
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            values, prefix = _enum_values(target)
            numbers = {m: values[prefix + m.name] for m in hint}
            return numbers.__getitem__
        if hint is datetime:
            return timestamp
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            nested = target.message_type
            return lambda v: self.to_message(v, nested)
        return _identity

    # proto -> domain

    def from_message(self, kind: type, message: Message) -> Any:
        plan = self._from.get((kind, message.DESCRIPTOR.full_name))
        if plan is None:
            plan = self._from[(kind, message.DESCRIPTOR.full_name)] = self._plan_from(
                kind, message.DESCRIPTOR
            )
        return kind(**{attr: convert(message) for attr, convert in plan})

    def _plan_from(self, kind: type, descriptor: Descriptor) -> list[tuple[str, Convert]]:
        hints = typing.get_type_hints(kind)
        plan: list[tuple[str, Convert]] = []
        for f in dataclasses.fields(kind):
            if not f.metadata.get("api", True):  # the emulator's own (models.EMULATOR_ONLY): its default
                continue
            members = _union_members(hints[f.name])
            if members:
                plan.append((f.name, self._oneof_from(members, f.name)))
                continue
            target = descriptor.fields_by_name.get(self.proto_name(f.name))
            if target is None:
                raise TypeError(f"{descriptor.full_name} has no field for {kind.__name__}.{f.name}")
            plan.append((f.name, self._converter_from(hints[f.name], target)))
        return plan

    def _oneof_from(self, members: tuple[type, ...], oneof: str) -> Convert:
        by_field = {snake(m.__name__): m for m in members}

        def convert(message: Any) -> Any:
            chosen = message.WhichOneof(oneof)
            return self.from_message(by_field[chosen], getattr(message, chosen)) if chosen else None

        return convert

    def _converter_from(self, hint: Any, target: FieldDescriptor) -> Convert:
        name = target.name
        repeated = typing.get_origin(hint) is tuple
        item_hint = typing.get_args(hint)[0] if repeated else hint
        item: Convert = _identity
        if isinstance(item_hint, type) and issubclass(item_hint, enum.Enum):
            values, prefix = _enum_values(target)
            members = {n: item_hint[name.removeprefix(prefix)] for name, n in values.items()}
            unspecified = item_hint["UNSPECIFIED"]
            item = lambda n: members.get(n, unspecified)  # noqa: E731 - values a newer proto added
        elif item_hint is datetime:
            item = lambda t: t.ToDatetime(tzinfo=UTC)  # noqa: E731
        elif isinstance(item_hint, type) and dataclasses.is_dataclass(item_hint):
            nested: type = item_hint
            item = lambda m: self.from_message(nested, m)  # noqa: E731
        if repeated:
            return lambda message: tuple(item(v) for v in getattr(message, name))
        return lambda message: item(getattr(message, name))

    # the resources of the API

    def fleet(self, view: FleetView) -> Any:
        message: Any = self.to_message(view.fleet, self.pb.Fleet.DESCRIPTOR)
        message.vehicle_count = view.vehicle_count
        message.vehicle_events_id = vehicle_events_id(view.fleet.id)
        return message

    def vehicle(self, vehicle: Vehicle) -> Any:
        """The vehicle's message, built once per content: its etag changes whenever anything in it does.
        Only the latest state of each vehicle is kept, so that a vehicle that keeps changing (the
        simulator's) takes one place."""
        return self._converted_vehicle(vehicle).message

    def vehicle_bytes(self, vehicle: Vehicle) -> bytes:
        """The vehicle's message serialized, once per content as its message."""
        return self._converted_vehicle(vehicle).data

    def _converted_vehicle(self, vehicle: Vehicle) -> Converted:
        cached = self._vehicles.get(vehicle.id)
        if cached is not None and cached.source == vehicle.etag:
            return cached
        converted = Converted(vehicle.etag, self.to_message(vehicle, self.pb.Vehicle.DESCRIPTOR))
        self._vehicles[vehicle.id] = converted
        self._vehicles.move_to_end(vehicle.id)
        if len(self._vehicles) > VEHICLE_CACHE_SIZE:
            self._vehicles.popitem(last=False)
        return converted

    def event(self, event: Event) -> Any:
        """The event's message, built once however many subscribers receive the same stored event.

        Both event logs hand every reader the same (immutable) object for an entry, so the cache is by
        identity; it keeps the object, so that its id cannot be reused while it is cached.
        """
        return self._converted_event(event).message

    def entry_bytes(self, entry: LogEntry) -> bytes:
        """A stored event's message serialized: its stored bytes where they are this version's, else once
        however many subscribers receive it."""
        if entry.stored and self.sends_stored_events:
            return entry.stored
        return self._converted_event(entry.event).data

    def stream_message(self, entry: LogEntry) -> Kept:
        """The ``StreamResponse`` carrying a stored event under its message id, joined once however many
        subscribers it goes to (``wire.py``); from the stored bytes, without reading the event (which a
        lazy entry decodes only then), where they are this version's."""
        if not (entry.stored and self.sends_stored_events):
            converted = self._converted_event(entry.event)
            if converted.streamed is None or converted.streamed[0] != entry.message_id:
                converted.streamed = (
                    entry.message_id,
                    self._stream_message(converted.data, entry.message_id),
                )
            return converted.streamed[1]
        cached = self._streamed.get(id(entry))
        if cached is not None and cached[0] is entry:
            return cached[1]
        joined = self._stream_message(entry.stored, entry.message_id)
        if len(self._streamed) >= EVENT_CACHE_SIZE:
            self._streamed.clear()  # the entries being fanned out now come back at once
        self._streamed[id(entry)] = (entry, joined)
        return joined

    def _stream_message(self, event: bytes, message_id: MessageId) -> Kept:
        event_tag, id_tag = self._stream_tags
        joined = field_bytes(event_tag, event) + field_bytes(id_tag, str(message_id).encode())
        return Kept(joined, self.pb.StreamResponse.FromString)

    @functools.cached_property
    def _stream_tags(self) -> tuple[bytes, bytes]:
        response = self.pb.StreamResponse.DESCRIPTOR
        return tag(response, "event"), tag(response, "message_id")

    def _converted_event(self, event: Event) -> Converted:
        cached = self._events.get(id(event))
        if cached is not None and cached.source is event:
            return cached
        converted = Converted(event, self.to_message(event, self.pb.Event.DESCRIPTOR))
        self._events[id(event)] = converted
        if len(self._events) > EVENT_CACHE_SIZE:
            self._events.popitem(last=False)
        return converted

    def event_from(self, message: Any) -> Event:
        event: Event = self.from_message(Event, message)
        return event

    def vehicle_from(self, message: Any) -> Vehicle:
        vehicle: Vehicle = self.from_message(Vehicle, message)
        return vehicle

    def fleet_from(self, message: Any) -> Fleet:
        fleet: Fleet = self.from_message(Fleet, message)
        return fleet


def _enum_values(target: FieldDescriptor) -> tuple[dict[str, int], str]:
    """The enum's values by name, and the prefix they share (``CONNECTIVITY_STATE_``)."""
    enum_type: Any = target.enum_type
    values = {v.name: v.number for v in enum_type.values}
    return values, enum_type.values[0].name.removesuffix("UNSPECIFIED")


def _identity(value: Any) -> Any:
    return value
