"""The call journal of a namespace: every call to the emulated API, for tests to check what a client did.

Entries are kept in memory, per process and namespace, and each has an increasing sequence number so that a
test can read only what came after the last entry it saw. On Redis finished entries move to the
namespace's ``JournalStore``, shared by the replicas (see ``Journal``). Requests and stream messages are
kept as their bytes (``Kept``; a message object takes five times as much memory), read back only when the
journal is read; the API layer cuts a request larger than it journals whole. Memory is bounded three ways,
the oldest entries dropped first: at most ``capacity`` entries and ``budget_bytes`` per namespace, and
``JournalPool.total_bytes`` for the journals of all namespaces together (the entry dropped is then the
oldest of all). An entry counts its own overhead, its headers and the bytes it keeps; a stream's entry
grows with each message it keeps (at most ``MAX_MESSAGES``), and one dropped while its stream goes on
keeps none. Every pool alive is listed by ``live_pools``, which the metrics read when scraped.
"""

from __future__ import annotations

import functools
import itertools
import logging
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from fleet_emulator.domain.errors import Unavailable

if TYPE_CHECKING:
    from fleet_emulator.backends.base import JournalStore

log = logging.getLogger(__name__)

CAPACITY = 10_000
BUDGET_BYTES = 16 * 1024 * 1024
TOTAL_BUDGET_BYTES = 64 * 1024 * 1024
MAX_MESSAGES = 100
ENTRY_OVERHEAD_BYTES = 1536  # the entry itself, its strings, dictionaries and datetimes, as measured
KEPT_OVERHEAD_BYTES = 120  # a Kept and its bytes object, beyond the bytes themselves
REDACTED = "<redacted>"
CREDENTIAL_PARTS = ("auth", "token", "key", "cookie", "secret", "passw", "session")

_order = itertools.count(1)  # across every journal: which entry is the oldest of all
_pools: weakref.WeakSet[JournalPool] = weakref.WeakSet()


@dataclass(frozen=True)
class Kept:
    """A message in its serialized form, its bytes and how to read them back: as the journal keeps
    messages, and as responses joined from cached bytes go out (``api/wire.py``)."""

    data: bytes
    load: Callable[[bytes], Any]

    @property
    def message(self) -> Any:
        return self.load(self.data)

    @property
    def size(self) -> int:
        return len(self.data) + KEPT_OVERHEAD_BYTES


@dataclass
class JournalEntry:
    start_time: datetime
    method: str
    version: str
    metadata: dict[str, str]
    request: Kept | None  # as the API layer received it (cut if it was large); None if it did not parse
    flow_id: str
    peer: str
    sequence: int = 0
    code: int = 0
    status_message: str = ""
    duration: timedelta = timedelta(0)
    finished: bool = False  # False while the call is still running (a stream, say)
    messages: list[Kept] = field(default_factory=list)  # the first MAX_MESSAGES sent
    message_count: int = 0
    resumed_from: str = ""
    client: str = ""  # the token's subject, a digest of the token, or the peer's host
    reason: str = ""  # ErrorInfo.reason of a failed call
    retry_delay: timedelta | None = None  # RetryInfo of a failed call
    token_expiry: datetime | None = None  # of the bearer token the call carried (or a token it issued)
    request_size: int = 0  # bytes of the request as received
    request_truncated: bool = False  # the request kept is cut (long strings and lists)
    status_details: bytes = b""  # the serialized google.rpc.Status a failed call got
    size: int = 0  # bytes the entry accounts for in its journal's budget
    order: int = 0
    journal: Journal | None = field(default=None, repr=False, compare=False)

    @property
    def keeps_messages(self) -> bool:
        """Whether the next message of the stream is kept: the first ``MAX_MESSAGES``, while in a journal."""
        return self.journal is not None and len(self.messages) < MAX_MESSAGES

    def sent(self, message: Kept | None) -> None:
        """Count a message of the stream, and keep it if given (see ``keeps_messages``)."""
        self.message_count += 1
        if message is not None and self.journal is not None:
            self.messages.append(message)
            self.journal.grew(self, message.size)


@dataclass(frozen=True)
class JournalQuery:
    """Which entries ``ListJournalEntries`` wants: after a sequence number, of a method (a name or a full
    name), a flow id and a code (finished calls only), at most ``limit``; empty filters admit all."""

    method: str = ""
    flow_id: str = ""
    code: int | None = None
    after: int = 0
    limit: int = 100

    def admits(self, entry: JournalEntry) -> bool:
        return self.admits_fields(entry.sequence, entry.method, entry.flow_id, entry.code, entry.finished)

    def admits_fields(self, sequence: int, method: str, flow_id: str, code: int, finished: bool) -> bool:
        """``admits`` for an entry known by these fields alone (a store filters before reading entries)."""
        if sequence <= self.after or (self.flow_id and flow_id != self.flow_id):
            return False
        if self.method and self.method not in (method.lstrip("/"), method.rsplit("/", 1)[-1]):
            return False
        return self.code is None or (finished and code == self.code)


def redact(metadata: dict[str, str]) -> dict[str, str]:
    """Request headers with every value whose name suggests a credential (``*auth*``, ``*token*``,
    ``*key*``, ``cookie``, ...) replaced, so that the journal never holds a secret."""
    return {k: REDACTED if _is_credential(k) else v for k, v in metadata.items()}


@functools.lru_cache(maxsize=1024)
def _is_credential(name: str) -> bool:
    lowered = name.lower()
    return any(part in lowered for part in CREDENTIAL_PARTS)


def metadata_size(metadata: dict[str, str]) -> int:
    return sum(len(k) + len(v) for k, v in metadata.items())


class JournalPool:
    """The journals of every namespace, kept together within ``total_bytes``."""

    def __init__(self, total_bytes: int = TOTAL_BUDGET_BYTES) -> None:
        self.total_bytes = total_bytes
        self.used = 0
        self.journals: set[Journal] = set()
        _pools.add(self)

    def journal(
        self, capacity: int = CAPACITY, budget_bytes: int = BUDGET_BYTES, store: JournalStore | None = None
    ) -> Journal:
        made = Journal(capacity, budget_bytes, self, store)
        self.journals.add(made)
        return made

    def forget(self, journal: Journal) -> None:
        """A journal that goes away with its namespace."""
        journal.forget_all()
        self.journals.discard(journal)

    def shed(self) -> None:
        """Drop the oldest entries of all journals until they fit ``total_bytes`` together."""
        while self.used > self.total_bytes:
            oldest = min(
                (j for j in self.journals if j.entries), key=lambda j: j.entries[0].order, default=None
            )
            if oldest is None:
                return
            oldest.drop_oldest()


def live_pools() -> list[JournalPool]:
    """Every journal pool not yet garbage-collected."""
    return list(_pools)


class Journal:
    """The entries of one namespace. With a ``store`` (Redis), an entry stays here while its call runs and
    moves to the store when it finishes, numbered by the store, so that every replica lists the calls of
    all; a stream is numbered when it starts (``numbered``), so that it is listed while it runs too."""

    def __init__(
        self,
        capacity: int = CAPACITY,
        budget_bytes: int = BUDGET_BYTES,
        pool: JournalPool | None = None,
        store: JournalStore | None = None,
    ) -> None:
        self.capacity = capacity
        self.budget_bytes = budget_bytes
        self.pool = pool or JournalPool()
        self.store = store
        self.entries: deque[JournalEntry] = deque()
        self.used = 0
        self._sequence = 0

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(self.entries)

    def add(self, entry: JournalEntry) -> JournalEntry:
        if self.store is None:
            self._sequence += 1
            entry.sequence = self._sequence
        entry.order, entry.journal = next(_order), self
        kept = entry.request.size if entry.request is not None else 0
        entry.size = ENTRY_OVERHEAD_BYTES + metadata_size(entry.metadata) + kept
        self.entries.append(entry)
        self._count(entry.size)
        return entry

    def grew(self, entry: JournalEntry, size: int) -> None:
        entry.size += size
        self._count(size)

    def _count(self, size: int) -> None:
        self.used += size
        self.pool.used += size
        while len(self.entries) > self.capacity or (self.used > self.budget_bytes and len(self.entries) > 1):
            self.drop_oldest()
        self.pool.shed()

    async def numbered(self, entry: JournalEntry) -> None:
        """Number a running entry now (a stream's), where the store numbers entries."""
        if self.store is not None:
            entry.sequence = await self.store.sequence()

    async def finished(self, entry: JournalEntry) -> None:
        """The entry's call ended: where there is a store, the entry moves there (unless it was dropped
        meanwhile: its namespace deleted, or its journal cleared or full)."""
        if self.store is None or entry.journal is not self:
            return
        self.entries.remove(entry)
        try:
            await self.store.keep(entry, self.capacity, self.budget_bytes)
        except Unavailable as exc:  # the call itself is over: its answer stands, its entry is lost
            log.warning("a journal entry of %s was lost: %s", entry.method, exc.message)
        finally:
            self._forget(entry)

    def drop_oldest(self) -> None:
        self._forget(self.entries.popleft())

    def _forget(self, entry: JournalEntry) -> None:
        entry.journal = None
        entry.messages.clear()  # its stream may go on and hold the entry: not the messages
        self.used -= entry.size
        self.pool.used -= entry.size

    async def listed(self) -> list[JournalEntry]:
        """Every entry, oldest first: the store's and the running ones numbered so far."""
        if self.store is None:
            return list(self.entries)
        return _in_order([*await self.store.entries(), *self._numbered()])

    async def find(self, query: JournalQuery) -> list[JournalEntry]:
        """The entries the query admits, oldest first: the store's (which it filters before reading them
        whole) and the running ones numbered so far."""
        if self.store is None:  # the entries here are in order: stop at the limit
            return list(itertools.islice((e for e in self.entries if query.admits(e)), query.limit))
        held = [*await self.store.find(query), *(e for e in self._numbered() if query.admits(e))]
        return _in_order(held)[: query.limit]

    def _numbered(self) -> list[JournalEntry]:
        """The running entries the store numbered already (streams), where there is a store."""
        return [e for e in self.entries if e.sequence]

    async def clear(self) -> int:
        count = self.forget_all()
        return await self.store.clear() if self.store is not None else count

    def forget_all(self) -> int:
        """Drop the entries this process holds (the store's stay)."""
        count = len(self.entries)
        while self.entries:
            self.drop_oldest()
        return count


def _in_order(entries: list[JournalEntry]) -> list[JournalEntry]:
    return sorted(entries, key=lambda e: e.sequence)
