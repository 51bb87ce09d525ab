"""Large requests as the journal keeps them: a copy with long strings, bytes and lists cut.

A request up to ``MAX_JOURNALED_BYTES`` is kept as it came. A larger one is copied with every string and
bytes value cut to ``MAX_TEXT`` characters (a cut string ends in "…") and every repeated or map field to
its first ``MAX_ITEMS`` items, at any depth; if the copy is still too large, an empty message of the type
stands in for it. The journal entry records that it was cut and the size that came. ``kept`` is what the
journal holds of a message: its bytes.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from fleet_emulator.domain.errors import shown
from fleet_emulator.domain.journal import Kept

MAX_JOURNALED_BYTES = 64 * 1024
MAX_TEXT = 1024
MAX_ITEMS = 100


def journaled(request: Message) -> tuple[Message, int, bool]:
    """The request as the journal keeps it, its size in bytes as received, and whether it was cut."""
    size = request.ByteSize()
    if size <= MAX_JOURNALED_BYTES:
        return request, size, False
    cut = type(request)()
    cut.CopyFrom(request)
    _cut(cut)
    if cut.ByteSize() > MAX_JOURNALED_BYTES:
        cut = type(request)()
    return cut, size, True


def kept(message: Message) -> Kept:
    return Kept(message.SerializeToString(), type(message).FromString)


def _text(value: Any) -> Any:
    if isinstance(value, str):
        return shown(value, MAX_TEXT)
    if isinstance(value, bytes) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT]
    return value


def _cut(message: Message) -> None:
    for field, value in message.ListFields():
        nested = field.type == FieldDescriptor.TYPE_MESSAGE
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key in list(value)[MAX_ITEMS:]:
                del value[key]
            if field.message_type.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
                for item in value.values():
                    _cut(item)
            else:
                for key in list(value):
                    value[key] = _text(value[key])
        elif field.is_repeated:
            del value[MAX_ITEMS:]
            for index, item in enumerate(value):
                if nested:
                    _cut(item)
                else:
                    value[index] = _text(item)
        elif nested:
            _cut(value)
        else:
            setattr(message, field.name, _text(value))
