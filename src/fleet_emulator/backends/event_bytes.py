"""Events as the Redis event log stores them: the bytes of one protobuf message, decoded once per process.

An entry holds the event as a ``moia.fleet.state.v2.Event`` (the most complete version, converted by the
same ``VersionAdapter`` as the API's), under the field ``pb``, about half the size of the JSON that earlier
versions of the emulator wrote under ``event``, which is still read. The event log's Redis client reads and
writes text as latin-1, which maps every byte to one character and back: protobuf bytes pass through
unchanged, while ids, keys and JSON, all ASCII, read as before. ``entry`` makes the log entry of a stream
entry; one stored as protobuf is a ``StoredEntry``, whose event is decoded only when something reads it: a
v2 subscriber sends the stored bytes as they are and never does.
"""

from __future__ import annotations

import json
from typing import Any

from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from fleet_emulator.api.convert import VersionAdapter
from fleet_emulator.domain.codec import decode_as
from fleet_emulator.domain.events import Event, LogEntry
from fleet_emulator.domain.message_ids import MessageId

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


def load(fields: dict[str, str]) -> Event:
    """The event of a stream entry's fields, written as protobuf or (by earlier versions) as JSON."""
    if PROTOBUF in fields:
        return decoded(fields[PROTOBUF].encode(ENCODING))
    return decode_as(Event, json.loads(fields[JSON]))


def decoded(data: bytes) -> Event:
    return STORED.event_from(v2.Event.FromString(data))


def entry(entry_id: str, fields: dict[str, str]) -> LogEntry:
    """The log entry of a stream entry's id and fields."""
    message_id, previous_id = MessageId.parse(entry_id), MessageId.parse(fields["prev"])
    if PROTOBUF in fields:
        return StoredEntry(message_id, previous_id, fields[PROTOBUF].encode(ENCODING))
    return LogEntry(message_id, previous_id, load(fields))


class StoredEntry(LogEntry):
    """A log entry whose event is decoded from its stored bytes the first time it is read."""

    def __init__(self, message_id: MessageId, previous_id: MessageId, stored: bytes) -> None:
        for name, value in (("message_id", message_id), ("previous_id", previous_id), ("stored", stored)):
            object.__setattr__(self, name, value)  # a frozen dataclass's fields, set as its __init__ does

    def __getattr__(self, name: str) -> Any:  # only called for an attribute not set yet: the event
        if name != "event":
            raise AttributeError(name)
        event = decoded(self.stored)
        object.__setattr__(self, "event", event)
        return event
