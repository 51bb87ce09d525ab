"""The flow id of the request being served (seed 003): chosen by the client or generated, one per call.

The API layer sets it for each call; anything that runs on behalf of that call (errors, events it causes)
reads it from here. A new flow id is a random (version 4) UUID, made from 128 bits of a generator seeded
from the OS (and again in a forked child, so that workers never share ids): a fifth of what ``uuid.uuid4``
costs per call, and the same text.
"""

from __future__ import annotations

import os
import random
import re
from contextvars import ContextVar

FLOW_ID_HEADER = "x-flow-id"
_VALID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

# the version (4) and variant (RFC 4122) bits of a random UUID, as ``uuid.UUID(version=4)`` sets them
_KEEP = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_SET = (0x4 << 76) | (0x2 << 62)
_random = random.Random()
os.register_at_fork(after_in_child=_random.seed)

current_flow_id: ContextVar[str] = ContextVar("current_flow_id", default="")


def new_flow_id() -> str:
    """A random UUID (version 4), as text."""
    h = f"{_random.getrandbits(128) & _KEEP | _SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_valid_flow_id(text: str) -> bool:
    return _VALID.fullmatch(text) is not None


def choose_flow_id(sent_by_client: str | None) -> str:
    """The client's flow id when it is a sane header value, otherwise a new UUID."""
    if sent_by_client and is_valid_flow_id(sent_by_client):
        return sent_by_client
    return new_flow_id()
