"""The call journal of a namespace: every call to the emulated API, for tests to check what a client did.

Entries are kept in memory, per process and namespace, the newest ``capacity`` of them; each has an
increasing sequence number so that a test can read only what came after the last entry it saw. Requests
and messages are kept as they were (immutable messages), so that journaling costs a call almost nothing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

CAPACITY = 10_000
MAX_MESSAGES = 100
REDACTED = "<redacted>"
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "x-api-key", "api-key", "proxy-authorization"})


@dataclass
class JournalEntry:
    start_time: datetime
    method: str
    version: str
    metadata: dict[str, str]
    request: Any  # as the API layer received it; turned into JSON only when the journal is read
    flow_id: str
    peer: str
    sequence: int = 0
    code: int = 0
    status_message: str = ""
    duration: timedelta = timedelta(0)
    finished: bool = False  # False while the call is still running (a stream, say)
    messages: list[Any] = field(default_factory=list)  # the first MAX_MESSAGES sent, as sent
    message_count: int = 0
    resumed_from: str = ""
    client: str = ""  # the token's subject, a digest of the token, or the peer's host
    reason: str = ""  # ErrorInfo.reason of a failed call
    retry_delay: timedelta | None = None  # RetryInfo of a failed call
    token_expiry: datetime | None = None  # of the bearer token the call carried (or a token it issued)

    def sent(self, message: Any) -> None:
        self.message_count += 1
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(message)


def redact(metadata: dict[str, str]) -> dict[str, str]:
    """Request headers with credentials replaced, so that the journal never holds a token."""
    return {k: REDACTED if k.lower() in CREDENTIAL_HEADERS else v for k, v in metadata.items()}


class Journal:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self.entries: deque[JournalEntry] = deque(maxlen=capacity)
        self._sequence = 0

    def add(self, entry: JournalEntry) -> JournalEntry:
        self._sequence += 1
        entry.sequence = self._sequence
        self.entries.append(entry)
        return entry

    def find(
        self, method: str = "", flow_id: str = "", code: int | None = None, after: int = 0, limit: int = 100
    ) -> list[JournalEntry]:
        found = []
        for entry in self.entries:
            if entry.sequence <= after or (flow_id and entry.flow_id != flow_id):
                continue
            if method and method not in (entry.method.lstrip("/"), entry.method.rsplit("/", 1)[-1]):
                continue
            if code is not None and (not entry.finished or entry.code != code):
                continue
            found.append(entry)
            if len(found) >= limit:
                break
        return found

    def clear(self) -> int:
        count = len(self.entries)
        self.entries.clear()
        return count
