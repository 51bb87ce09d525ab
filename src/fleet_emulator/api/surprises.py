"""Unknown values in responses, for testing that clients tolerate what a later API version may send.

With the namespace policy ``unknown_values`` on, every ``Vehicle`` in a response gets one more door whose
position and state are enum values no published proto defines (``UNKNOWN_ENUM``), and every ``Vehicle``,
``Fleet`` and ``Event`` carries fields with numbers the protos do not define (``UNKNOWN_FIELDS``): a string,
a number and a message. Nothing known changes, so a tolerant client behaves exactly as without them; one
that fails on unknown enum values or fields shows it. grpcurl prints the enum values as numbers.
"""

from __future__ import annotations

from google.protobuf.message import Message

UNKNOWN_ENUM = 99
# Field 1000: the string "added in a later version"; 1001: the varint 7; 1002: a message {1: "new"}.
UNKNOWN_FIELDS = b"\xc2\x3e\x18added in a later version" + b"\xc8\x3e\x07" + b"\xd2\x3e\x05\x0a\x03new"
SURPRISED = frozenset({"Vehicle", "Fleet", "Event"})


def surprise(message: Message) -> Message:
    """Add unknown values to every vehicle, fleet and event in ``message`` (changed in place, returned)."""
    descriptor = message.DESCRIPTOR
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        values = value if field.is_repeated else [value]
        for item in values:
            surprise(item)
    if descriptor.name in SURPRISED:
        if descriptor.name == "Vehicle":
            message.doors.add(position=UNKNOWN_ENUM, state=UNKNOWN_ENUM)  # type: ignore[attr-defined]
        message.MergeFromString(UNKNOWN_FIELDS)
    return message
