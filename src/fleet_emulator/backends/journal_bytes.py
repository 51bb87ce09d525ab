"""The stored form of a journal entry (``domain/journal.py``) in a shared journal: compact JSON of the fields
that differ from their defaults (a field left out reads back as its default), with the request and the
stream messages it keeps as their protobuf bytes (base64) and message type, read back through the default
descriptor pool (every message the emulator journals is one of its generated types)."""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

from google.protobuf import descriptor_pool, message_factory

from fleet_emulator.domain.codec import decode_as, encode
from fleet_emulator.domain.journal import JournalEntry, Kept

KEPT_FIELDS = ("request", "messages")
NOT_STORED = ("journal", "sequence", "order", *KEPT_FIELDS)
STORED = tuple(
    (f.name, f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
    for f in dataclasses.fields(JournalEntry)
    if f.name not in NOT_STORED
)  # each stored field and its default (``dataclasses.MISSING`` where it has none)


def dump(entry: JournalEntry) -> str:
    data = {}
    for name, default in STORED:
        value = getattr(entry, name)
        if default is dataclasses.MISSING or value != default:
            data[name] = encode(value)
    if entry.request is not None:
        data["request"] = _dump_kept(entry.request)
    if entry.messages:
        data["messages"] = [_dump_kept(m) for m in entry.messages]
    return json.dumps(data, separators=(",", ":"))


def load(text: str, sequence: int) -> JournalEntry:
    data = json.loads(text)
    request, messages = data.pop("request", None), data.pop("messages", [])
    entry = decode_as(JournalEntry, {**data, "request": None})
    entry.request = _load_kept(request) if request is not None else None
    entry.messages = [_load_kept(m) for m in messages]
    entry.sequence = sequence
    return entry


def _dump_kept(kept: Kept) -> dict[str, str]:
    message_type: Any = getattr(kept.load, "__self__")  # noqa: B009 (``FromString`` of a message class)
    return {"type": message_type.DESCRIPTOR.full_name, "data": base64.b64encode(kept.data).decode("ascii")}


def _load_kept(data: dict[str, str]) -> Kept:
    descriptor = descriptor_pool.Default().FindMessageTypeByName(data["type"])
    return Kept(base64.b64decode(data["data"]), message_factory.GetMessageClass(descriptor).FromString)
