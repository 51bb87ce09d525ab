"""The flow id of the request being served (seed 003): chosen by the client or generated, one per call.

The API layer sets it for each call; anything that runs on behalf of that call (errors, events it causes)
reads it from here.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

FLOW_ID_HEADER = "x-flow-id"
_VALID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

current_flow_id: ContextVar[str] = ContextVar("current_flow_id", default="")


def is_valid_flow_id(text: str) -> bool:
    return _VALID.fullmatch(text) is not None


def choose_flow_id(sent_by_client: str | None) -> str:
    """The client's flow id when it is a sane header value, otherwise a new UUID."""
    if sent_by_client and is_valid_flow_id(sent_by_client):
        return sent_by_client
    return str(uuid.uuid4())
