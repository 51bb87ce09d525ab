"""Events as the Redis event log stores them: the bytes of one protobuf message, decoded once per process.

An entry holds the event as a ``moia.fleet.state.v2.Event`` (the most complete version, converted by the
same ``VersionAdapter`` as the API's), under the field ``pb``, about half the size of the JSON that earlier
versions of the emulator wrote under ``event``, which is still read. The event log's Redis client reads and
writes text as latin-1, which maps every byte to one character and back: protobuf bytes pass through
unchanged, while ids, keys and JSON, all ASCII, read as before.
"""

from __future__ import annotations

import json

from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from fleet_emulator.api.convert import VersionAdapter
from fleet_emulator.domain.codec import decode_as
from fleet_emulator.domain.events import Event

ENCODING = "latin-1"
PROTOBUF = "pb"  # the field of an entry that holds the event's protobuf bytes
JSON = "event"  # the field in which earlier versions kept the event as JSON
STORED = VersionAdapter("stored", v2, spec_field="properties")


def encoded(event: Event) -> bytes:
    """The event's protobuf bytes: what a v2 answer carries."""
    data: bytes = STORED.to_message(event, v2.Event.DESCRIPTOR).SerializeToString()
    return data


def dump(event: Event) -> str:
    """The event's protobuf bytes, as the event log's client sends them (``ENCODING``)."""
    return encoded(event).decode(ENCODING)


def load(fields: dict[str, str]) -> tuple[Event, bytes]:
    """The event of a stream entry's fields, written as protobuf or (by earlier versions) as JSON, and its
    protobuf bytes (empty for JSON)."""
    if PROTOBUF in fields:
        data = fields[PROTOBUF].encode(ENCODING)
        return STORED.event_from(v2.Event.FromString(data)), data
    return decode_as(Event, json.loads(fields[JSON])), b""
