"""Responses assembled from serialized parts, so that a message sent to many is serialized once.

A protobuf message is the concatenation of its fields, and a message field is its tag, its length and the
nested message's bytes. So a ``ListVehicles`` page, a ``GetVehicle`` answer or a stream message can be
joined from bytes each version keeps per vehicle state and per stored event (``convert.py``) instead of
being built and serialized per call and per subscriber. ``assemble`` does the joining for one response type
and returns a ``Kept`` (the bytes and how to read them back), which the call scope sends as it is and the
journal keeps without serializing again. Tags are worked out once per response type.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from fleet_emulator.domain.journal import Kept

Part = bytes | str | Sequence[bytes]  # a message field's bytes, a string, or repeated messages' bytes


_SMALL = [bytes((n,)) for n in range(0x80)]


def varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@functools.cache
def tag(descriptor: Descriptor, name: str) -> bytes:
    """The tag of a length-delimited field (a message, a string): its number and wire type 2."""
    field: FieldDescriptor = descriptor.fields_by_name[name]
    return varint(field.number << 3 | 2)


def field_bytes(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, the payload's length and the payload."""
    return tag + varint(len(payload)) + payload


def assemble(message_type: type[Message], **parts: Part) -> Kept:
    """The serialized ``message_type`` with the given fields (empty strings and no bytes are left out,
    as protobuf leaves out default values), in the order given."""
    descriptor = message_type.DESCRIPTOR
    chunks: list[bytes] = []
    for name, part in parts.items():
        field_tag = tag(descriptor, name)
        if isinstance(part, str):
            if part:
                chunks.append(field_bytes(field_tag, part.encode()))
        elif isinstance(part, bytes):
            chunks.append(field_bytes(field_tag, part))
        else:
            chunks.extend(field_bytes(field_tag, item) for item in part)
    return Kept(b"".join(chunks), message_type.FromString)
