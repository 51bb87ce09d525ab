"""The stored form of a journal entry (``domain/journal.py``) in a shared journal: JSON, with the request and
the stream messages it keeps as their protobuf bytes (base64) and message type, read back through the
default descriptor pool (every message the emulator journals is one of its generated types)."""

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


def dump(entry: JournalEntry) -> str:
    data = {
        f.name: encode(getattr(entry, f.name)) for f in dataclasses.fields(entry) if f.name not in NOT_STORED
    }
    data["request"] = _dump_kept(entry.request) if entry.request is not None else None
    data["messages"] = [_dump_kept(m) for m in entry.messages]
    return json.dumps(data)


def load(text: str, sequence: int) -> JournalEntry:
    data = json.loads(text)
    request, messages = data.pop("request"), data.pop("messages")
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
